//! Result codes and the caller-owned error object.

use allocator_core::{ConfigError, Error};

/// Every result code. Values are part of the ABI: never reused, never renumbered; new codes are
/// added at the end.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ta_result {
    /// Success.
    TA_OK = 0,
    /// A required pointer was NULL.
    TA_NULL_ARGUMENT = 1,
    /// A string was not valid UTF-8.
    TA_INVALID_UTF8 = 2,
    /// The configuration was refused (`ta_config` fields, or a core configuration rule).
    TA_INVALID_CONFIG = 3,
    /// A collector name is not known.
    TA_UNKNOWN_COLLECTOR = 4,
    /// A collector name is already present, or repeated in one call.
    TA_DUPLICATE_COLLECTOR = 5,
    /// A collector name is empty.
    TA_EMPTY_COLLECTOR_NAME = 6,
    /// A removed target is not known.
    TA_UNKNOWN_TARGET = 7,
    /// One change both upserts and removes a target.
    TA_CONFLICTING_TARGET = 8,
    /// A label set names a label twice.
    TA_DUPLICATE_LABEL = 9,
    /// A label set has no `__address__`.
    TA_MISSING_ADDRESS = 10,
    /// The consistent-hashing ring cannot place every partition on these collectors.
    TA_RING_CAPACITY = 11,
    /// More collectors, jobs or nodes than 32-bit ids hold.
    TA_CAPACITY = 12,
    /// An output buffer is smaller than `*needed`; nothing was written to it.
    TA_BUFFER_TOO_SMALL = 13,
    /// Snapshot bytes were refused (truncated, corrupted, foreign or another format version).
    TA_INVALID_SNAPSHOT = 14,
    /// An internal error (a bug) was caught at the boundary. A handle that was being changed
    /// when it happened refuses further use with this code.
    TA_PANIC = 15,
    /// An argument is out of range (e.g. a length that does not match).
    TA_INVALID_ARGUMENT = 16,
}

impl ta_result {
    /// The static message of a code.
    pub fn message(self) -> &'static str {
        match self {
            ta_result::TA_OK => "ok",
            ta_result::TA_NULL_ARGUMENT => "a required pointer argument is NULL",
            ta_result::TA_INVALID_UTF8 => "a string is not valid UTF-8",
            ta_result::TA_INVALID_CONFIG => "invalid configuration",
            ta_result::TA_UNKNOWN_COLLECTOR => "unknown collector",
            ta_result::TA_DUPLICATE_COLLECTOR => "duplicate collector",
            ta_result::TA_EMPTY_COLLECTOR_NAME => "collector name is empty",
            ta_result::TA_UNKNOWN_TARGET => "unknown target",
            ta_result::TA_CONFLICTING_TARGET => "target both upserted and removed in one change",
            ta_result::TA_DUPLICATE_LABEL => "label set names a label twice",
            ta_result::TA_MISSING_ADDRESS => "label set has no __address__",
            ta_result::TA_RING_CAPACITY => "ring cannot place every partition on these collectors",
            ta_result::TA_CAPACITY => "too many collectors, jobs or nodes",
            ta_result::TA_BUFFER_TOO_SMALL => "output buffer too small",
            ta_result::TA_INVALID_SNAPSHOT => "invalid snapshot",
            ta_result::TA_PANIC => "internal error",
            ta_result::TA_INVALID_ARGUMENT => "invalid argument",
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
        let code = match &e {
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
        };
        FfiError::new(code, e.to_string())
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
