//! Result codes and the caller-owned error object.

use allocator_core::{ConfigError, Error};

/// The one table of result codes: value, name, message. The Rust enum, `ta_result_name`,
/// `ta_result_message`, the C enum in the header, Go's `codes.go` and the codes Python's
/// exceptions carry are all generated from it (the header test writes the generated files and
/// fails when they are stale). Values are part of the ABI: never reused, never renumbered; new
/// codes are added at the end.
macro_rules! result_codes {
    ($($(#[doc = $doc:literal])* $name:ident = $value:literal => $message:literal,)*) => {
        /// Every result code of the C ABI (see [`ta_result::ALL`] for names and messages).
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ta_result {
            $($(#[doc = $doc])* $name = $value,)*
        }

        impl ta_result {
            /// Every code, in value order.
            pub const ALL: &'static [ta_result] = &[$(ta_result::$name,)*];

            /// The code's name as in the header (`"TA_UNKNOWN_TARGET"`).
            pub const fn name(self) -> &'static str {
                match self { $(ta_result::$name => stringify!($name),)* }
            }

            /// A short sentence saying what the code means.
            pub const fn message(self) -> &'static str {
                match self { $(ta_result::$name => $message,)* }
            }

            /// What the header's doc comment says about the code.
            pub fn doc(self) -> &'static str {
                match self { $(ta_result::$name => concat!($($doc, "\n",)*).trim(),)* }
            }

            /// [`ta_result::name`], NUL-terminated, for C.
            pub(crate) const fn name_c(self) -> &'static std::ffi::CStr {
                match self {
                    $(ta_result::$name => match std::ffi::CStr::from_bytes_with_nul(
                        concat!(stringify!($name), "\0").as_bytes()) {
                        Ok(c) => c,
                        Err(_) => panic!("a code name holds a NUL"),
                    },)*
                }
            }

            /// [`ta_result::message`], NUL-terminated, for C.
            pub(crate) const fn message_c(self) -> &'static std::ffi::CStr {
                match self {
                    $(ta_result::$name => match std::ffi::CStr::from_bytes_with_nul(
                        concat!($message, "\0").as_bytes()) {
                        Ok(c) => c,
                        Err(_) => panic!("a code message holds a NUL"),
                    },)*
                }
            }

            /// The code with this value, if there is one.
            pub fn from_u32(value: u32) -> Option<ta_result> {
                ta_result::ALL.iter().copied().find(|c| *c as u32 == value)
            }
        }
    };
}

result_codes! {
    /// Success.
    TA_OK = 0 => "ok",
    /// A required pointer was NULL.
    TA_NULL_ARGUMENT = 1 => "a required pointer argument is NULL",
    /// A string was not valid UTF-8.
    TA_INVALID_UTF8 = 2 => "a string is not valid UTF-8",
    /// The configuration was refused (`ta_config` fields, or a core configuration rule).
    TA_INVALID_CONFIG = 3 => "invalid configuration",
    /// A collector name is not known.
    TA_UNKNOWN_COLLECTOR = 4 => "unknown collector",
    /// A collector name is already present, or repeated in one call.
    TA_DUPLICATE_COLLECTOR = 5 => "duplicate collector",
    /// A collector name is empty.
    TA_EMPTY_COLLECTOR_NAME = 6 => "collector name is empty",
    /// A removed target is not known.
    TA_UNKNOWN_TARGET = 7 => "unknown target",
    /// One change both upserts and removes a target.
    TA_CONFLICTING_TARGET = 8 => "target both upserted and removed in one change",
    /// A label set names a label twice.
    TA_DUPLICATE_LABEL = 9 => "label set names a label twice",
    /// A label set has no `__address__`.
    TA_MISSING_ADDRESS = 10 => "label set has no __address__",
    /// The consistent-hashing ring cannot place every partition on these collectors.
    TA_RING_CAPACITY = 11 => "ring cannot place every partition on these collectors",
    /// More collectors, jobs or nodes than 32-bit ids hold.
    TA_CAPACITY = 12 => "too many collectors, jobs or nodes",
    /// An output buffer is smaller than `*needed`; nothing was written to it.
    TA_BUFFER_TOO_SMALL = 13 => "output buffer too small",
    /// Snapshot bytes were refused (truncated, corrupted, foreign or another format version).
    TA_INVALID_SNAPSHOT = 14 => "invalid snapshot",
    /// An internal error (a bug) was caught at the boundary. A handle that was being changed
    /// when it happened refuses further use with this code.
    TA_PANIC = 15 => "internal error",
    /// An argument is out of range (e.g. a length that does not match, or a batch whose
    /// columns disagree).
    TA_INVALID_ARGUMENT = 16 => "invalid argument",
}

impl ta_result {
    /// The code of a core error: the one mapping from core errors to codes, used by the C ABI
    /// and by the Python module.
    pub fn of(e: &Error) -> ta_result {
        match e {
            Error::Config(_) => ta_result::TA_INVALID_CONFIG,
            Error::EmptyCollectorName => ta_result::TA_EMPTY_COLLECTOR_NAME,
            Error::DuplicateCollector(_) => ta_result::TA_DUPLICATE_COLLECTOR,
            Error::UnknownCollector(_) => ta_result::TA_UNKNOWN_COLLECTOR,
            Error::UnknownTarget(_) => ta_result::TA_UNKNOWN_TARGET,
            Error::ConflictingTarget(_) => ta_result::TA_CONFLICTING_TARGET,
            Error::MissingAddress(_) => ta_result::TA_MISSING_ADDRESS,
            Error::InvalidNodeName(_) => ta_result::TA_INVALID_UTF8,
            Error::DuplicateLabel(_) => ta_result::TA_DUPLICATE_LABEL,
            Error::RingCapacity { .. } => ta_result::TA_RING_CAPACITY,
            Error::Snapshot(_) => ta_result::TA_INVALID_SNAPSHOT,
            Error::Capacity(_) => ta_result::TA_CAPACITY,
            _ => ta_result::TA_INVALID_ARGUMENT,
        }
    }
}

/// A failure: its code and a message naming the offending input.
#[derive(Debug)]
pub(crate) struct FfiError {
    pub code: ta_result,
    pub message: String,
}

impl FfiError {
    pub(crate) fn new(code: ta_result, message: impl Into<String>) -> FfiError {
        FfiError {
            code,
            message: message.into(),
        }
    }

    /// The same error with what it concerns in front of its message.
    pub(crate) fn context(mut self, what: impl std::fmt::Display) -> FfiError {
        self.message = format!("{what}: {}", self.message);
        self
    }

    pub(crate) fn null(what: impl std::fmt::Display) -> FfiError {
        FfiError::new(ta_result::TA_NULL_ARGUMENT, format!("{what} is NULL"))
    }
}

impl From<Error> for FfiError {
    fn from(e: Error) -> FfiError {
        FfiError::new(ta_result::of(&e), e.to_string())
    }
}

impl From<ConfigError> for FfiError {
    fn from(e: ConfigError) -> FfiError {
        FfiError::from(Error::Config(e))
    }
}

/// A caller-owned error object: create it with `ta_error_new`, pass it as the last argument of
/// calls, read it after a failure, free it with `ta_error_free`. A successful call resets it.
/// One error object must not be used by two threads at once.
pub struct ta_error {
    pub(crate) code: ta_result,
    pub(crate) message: String,
}

impl ta_error {
    pub(crate) fn set(&mut self, e: FfiError) {
        self.code = e.code;
        self.message = e.message;
    }

    pub(crate) fn clear(&mut self) {
        self.code = ta_result::TA_OK;
        self.message.clear();
    }
}
