//! The check that a caller was compiled against the header of the library it links: a program
//! built with one version's `target_allocator.h` and linked with another version's library
//! would pass structs whose fields the library reads at other offsets (a field added to
//! `ta_label_batch` moves every field of `ta_diff` after it), which is undefined behaviour with
//! no error to show for it. The header lists the sizes of its public structs in
//! `TA_LAYOUT_SIZES`; the library compares them with its own.

use std::mem::size_of;

use crate::error::{ta_error, ta_result, FfiError};
use crate::guard::call;
use crate::handle;
use crate::types::{
    ta_collector, ta_collector_info, ta_config, ta_diff, ta_label_batch, ta_move, ta_node_zone,
    ta_str, ta_summary, ta_target_batch, ta_view_data,
};

/// The public structs in the order of `TA_LAYOUT_SIZES`, with their sizes in this library.
fn layout() -> [(&'static str, usize); 11] {
    [
        ("ta_str", size_of::<ta_str>()),
        ("ta_config", size_of::<ta_config>()),
        ("ta_target_batch", size_of::<ta_target_batch>()),
        ("ta_label_batch", size_of::<ta_label_batch>()),
        ("ta_collector", size_of::<ta_collector>()),
        ("ta_node_zone", size_of::<ta_node_zone>()),
        ("ta_diff", size_of::<ta_diff>()),
        ("ta_move", size_of::<ta_move>()),
        ("ta_collector_info", size_of::<ta_collector_info>()),
        ("ta_summary", size_of::<ta_summary>()),
        ("ta_view_data", size_of::<ta_view_data>()),
    ]
}

/// Check that the caller's header describes this library's structs: pass the sizes of
/// `TA_LAYOUT_SIZES` as the caller's compiler computed them (`size_t s[] = TA_LAYOUT_SIZES;
/// ta_check_layout(s, sizeof s / sizeof s[0], err);`). `TA_INVALID_ARGUMENT` names the first
/// struct whose size differs, or a different number of structs (a header of another version):
/// rebuild the caller against this library's header. Call it once, before any other call.
///
/// # Safety
/// See the safety contract.
#[no_mangle]
pub unsafe extern "C" fn ta_check_layout(
    sizes: *const usize,
    n_sizes: usize,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let sizes = unsafe { handle::slice(sizes, n_sizes, "sizes") }?;
        let ours = layout();
        let mismatch = |what: String| {
            FfiError::new(
                ta_result::TA_INVALID_ARGUMENT,
                format!(
                    "the caller was built with another version's target_allocator.h than this library ({}): {what}; rebuild it against this library's header",
                    env!("CARGO_PKG_VERSION")
                ),
            )
        };
        if sizes.len() != ours.len() {
            return Err(mismatch(format!(
                "its header lists {} structs, this library {}",
                sizes.len(),
                ours.len()
            )));
        }
        match ours
            .iter()
            .zip(sizes)
            .find(|((_, size), seen)| size != *seen)
        {
            Some(((name, size), seen)) => Err(mismatch(format!(
                "{name} is {seen} bytes there, {size} here"
            ))),
            None => Ok(()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_lists_every_public_struct_once() {
        let names: Vec<&str> = layout().iter().map(|(n, _)| *n).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        // The header's macro lists the same structs in the same order.
        let header = include_str!("../../../include/target_allocator.h");
        let start = header
            .find("#define TA_LAYOUT_SIZES")
            .expect("macro in the header");
        let line = &header[start
            ..header[start..]
                .find('}')
                .map_or(header.len(), |e| start + e)];
        let listed: Vec<&str> = line
            .split("sizeof(")
            .skip(1)
            .map(|s| s.split(')').next().unwrap_or(""))
            .collect();
        assert_eq!(listed, names);
    }
}
