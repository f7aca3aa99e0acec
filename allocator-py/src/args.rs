//! Python arguments turned into owned Rust values, with one contract for every call: each
//! error names the argument and says what was expected, and no conversion changes a value
//! (a negative number, a float or an out-of-range integer is refused, never wrapped or
//! truncated).

use numpy::{PyArrayDescrMethods, PyReadonlyArray1, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyFloat, PyInt, PyMapping, PyMappingMethods, PyString,
};

/// The Python type name of `obj`, for messages.
fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

/// A str as UTF-8: a lone surrogate (which `str` allows and UTF-8 cannot hold) is a ValueError
/// naming the argument, not a bare UnicodeEncodeError.
fn text(s: &Bound<'_, PyString>, what: &str) -> PyResult<String> {
    s.to_cow().map(|c| c.into_owned()).map_err(|_| {
        PyValueError::new_err(format!(
            "{what}: {} is not valid Unicode text (a lone surrogate cannot be encoded as UTF-8)",
            s.repr().map_or_else(|_| "?".to_owned(), |r| r.to_string())
        ))
    })
}

/// A real number (int or float, numpy scalars included; not a bool), for the options that
/// take one.
pub fn real(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<f64> {
    let numeric = obj.is_instance_of::<PyFloat>() || obj.is_instance_of::<PyInt>();
    if obj.is_instance_of::<PyBool>() || !(numeric || obj.hasattr("__float__")?) {
        return Err(PyTypeError::new_err(format!(
            "{what}: expected a number, got {}",
            type_name(obj)
        )));
    }
    obj.extract::<f64>().map_err(|_| {
        PyValueError::new_err(format!(
            "{what}: expected a number representable as a float, got {}",
            obj.repr()
                .map_or_else(|_| "?".to_owned(), |r| r.to_string())
        ))
    })
}

/// An optional argument: its default when absent or None, else `check` of it.
pub fn option<T>(
    obj: Option<&Bound<'_, PyAny>>,
    default: T,
    check: impl FnOnce(&Bound<'_, PyAny>) -> PyResult<T>,
) -> PyResult<T> {
    match obj {
        Some(o) if !o.is_none() => check(o),
        _ => Ok(default),
    }
}

/// A flag: True or False only (an int or other truthy object is a TypeError naming it).
pub fn flag(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<bool> {
    match obj.cast::<PyBool>() {
        Ok(b) => Ok(b.is_true()),
        Err(_) => Err(PyTypeError::new_err(format!(
            "{what}: expected True or False, got {}",
            type_name(obj)
        ))),
    }
}

/// Refuse a bare str or bytes where a list is expected: iterating it would silently make one
/// item per character. `of_names`: the list is of strings, so the message shows the fix.
fn refuse_bare_string(
    obj: &Bound<'_, PyAny>,
    what: &str,
    expected: &str,
    of_names: bool,
) -> PyResult<()> {
    if obj.is_instance_of::<PyString>()
        || obj.is_instance_of::<PyBytes>()
        || obj.is_instance_of::<PyByteArray>()
    {
        let fix = if of_names {
            let repr = obj
                .repr()
                .map_or_else(|_| "...".to_owned(), |r| r.to_string());
            format!("pass a list, e.g. [{repr}]")
        } else {
            "pass a list".to_owned()
        };
        return Err(PyTypeError::new_err(format!(
            "{what}: expected {expected}, got a single {} ({fix})",
            type_name(obj)
        )));
    }
    Ok(())
}

/// The items of a list argument (any iterable but a bare string), or an error naming it.
fn list_items<'py>(
    items: &Bound<'py, PyAny>,
    what: &str,
    expected: &str,
    of_names: bool,
) -> PyResult<Bound<'py, pyo3::types::PyIterator>> {
    refuse_bare_string(items, what, expected, of_names)?;
    items.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what}: expected {expected}, got {}",
            type_name(items)
        ))
    })
}

/// Collectors: names, or (name, node) tuples, in a list (any iterable but a bare string).
pub fn collectors(items: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<(String, Option<String>)>> {
    const EXPECTED: &str = "a list of collector names or (name, node) tuples";
    let iter = list_items(items, what, EXPECTED, true)?;
    let mut out = Vec::new();
    for (i, item) in iter.enumerate() {
        let item = item?;
        if let Ok(name) = item.cast::<PyString>() {
            out.push((text(name, &format!("{what}[{i}]"))?, None));
        } else if let Ok((name, node)) =
            item.extract::<(Bound<'_, PyString>, Option<Bound<'_, PyString>>)>()
        {
            let at = format!("{what}[{i}]");
            let node = node.map(|n| text(&n, &at)).transpose()?;
            out.push((text(&name, &at)?, node));
        } else {
            return Err(PyTypeError::new_err(format!(
                "{what}[{i}]: expected a collector name (str) or a (name, node) tuple, got {}",
                type_name(&item)
            )));
        }
    }
    Ok(out)
}

/// Names in a list (any iterable of str but a bare string).
pub fn names(items: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<String>> {
    const EXPECTED: &str = "a list of names (str)";
    let iter = list_items(items, what, EXPECTED, true)?;
    iter.enumerate()
        .map(|(i, item)| {
            let item = item?;
            match item.cast::<PyString>() {
                Ok(s) => text(s, &format!("{what}[{i}]")),
                Err(_) => Err(PyTypeError::new_err(format!(
                    "{what}[{i}]: expected a str, got {}",
                    type_name(&item)
                ))),
            }
        })
        .collect()
}

/// A label set: any mapping (dict, MappingProxyType, UserDict, ...) of str to str, as pairs.
pub fn labels(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Labels> {
    let map = obj.cast::<PyMapping>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what}: expected a mapping of label names to values (str to str), got {}",
            type_name(obj)
        ))
    })?;
    let mut out = Vec::new();
    for row in map.items()?.iter() {
        let (name, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = row.extract()?;
        let name = name.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!(
                "{what}: label names must be str, got {}",
                type_name(&name)
            ))
        })?;
        let value = value.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!(
                "{what}[{}]: label values must be str, got {}",
                name.repr()
                    .map_or_else(|_| "?".to_owned(), |r| r.to_string()),
                type_name(&value)
            ))
        })?;
        out.push((text(name, what)?, text(value, what)?));
    }
    Ok(out)
}

/// A label set as (name, value) pairs.
pub type Labels = Vec<(String, String)>;

/// Label-set targets: (labels, job) rows.
pub type LabelRows = Vec<(Labels, String)>;

/// Label-set targets: a list of (labels mapping, job) pairs.
pub fn label_targets(items: &Bound<'_, PyAny>, what: &str) -> PyResult<LabelRows> {
    const EXPECTED: &str = "a list of (labels, job) pairs";
    let iter = list_items(items, what, EXPECTED, false)?;
    iter.enumerate()
        .map(|(i, item)| {
            let item = item?;
            let (l, job): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "{what}[{i}]: expected a (labels, job) pair, got {}",
                    type_name(&item)
                ))
            })?;
            let job = job.cast::<PyString>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "{what}[{i}]: the job must be a str, got {}",
                    type_name(&job)
                ))
            })?;
            let at = format!("{what}[{i}]");
            Ok((labels(&l, &at)?, text(job, &at)?))
        })
        .collect()
}

/// One unsigned integer of at most `max`: a Python int or numpy integer scalar (not a bool,
/// not a float), neither negative nor above `max`.
fn unsigned(obj: &Bound<'_, PyAny>, what: &str, max: u64, ty: &str) -> PyResult<u64> {
    let not_int = || {
        PyTypeError::new_err(format!(
            "{what}: expected a non-negative integer ({ty}), got {}",
            type_name(obj)
        ))
    };
    if obj.is_instance_of::<PyBool>() {
        return Err(not_int());
    }
    // `__index__` only: floats, strings and other non-integers fail here.
    let value: i128 = obj.extract().map_err(|_| not_int())?;
    if value < 0 || value > i128::from(max) {
        return Err(PyValueError::new_err(format!(
            "{what}: expected an integer from 0 to {max} ({ty}), got {value}"
        )));
    }
    Ok(value as u64)
}

/// A key (or other uint64 value).
pub fn u64_scalar(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<u64> {
    unsigned(obj, what, u64::MAX, "uint64")
}

/// A weight (or other uint32 value).
pub fn u32_scalar(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<u32> {
    unsigned(obj, what, u64::from(u32::MAX), "uint32").map(|v| v as u32)
}

/// A column of unsigned integers of at most `max`: a 1-D numpy array of any integer dtype
/// (checked: no negative value, none above `max`), or a list of ints. `uint64`/`uint32` arrays
/// of the exact type take the fast path.
fn column(obj: &Bound<'_, PyAny>, what: &str, max: u64, ty: &str) -> PyResult<Vec<u64>> {
    let expected =
        format!("a 1-D numpy array of {ty} (or another integer dtype) or a list of ints");
    if let Ok(arr) = obj.cast::<PyUntypedArray>() {
        if arr.ndim() != 1 {
            return Err(PyValueError::new_err(format!(
                "{what}: expected {expected}, got an array of shape {}",
                arr.getattr("shape")?.repr()?
            )));
        }
        let dtype = arr.dtype();
        let kind = dtype.kind();
        if kind == b'O' {
            // Python objects: checked one by one below.
        } else if kind != b'u' && kind != b'i' {
            let name = dtype
                .getattr("name")
                .map_or_else(|_| "?".to_owned(), |n| n.to_string());
            return Err(PyTypeError::new_err(format!(
                "{what}: expected {expected}, got {name}"
            )));
        } else if let Ok(a) = obj.extract::<PyReadonlyArray1<'_, u64>>() {
            let out: Vec<u64> = a.as_array().iter().copied().collect();
            if let Some((i, v)) = out.iter().enumerate().find(|(_, &v)| v > max) {
                return Err(PyValueError::new_err(format!(
                    "{what}[{i}]: expected an integer from 0 to {max} ({ty}), got {v}"
                )));
            }
            return Ok(out);
        } else {
            // Any other integer dtype: every value fits an i64 or a u64 after the range check,
            // which numpy's astype then keeps exactly.
            if arr.len() == 0 {
                return Ok(Vec::new());
            }
            let (lo, hi): (i128, i128) = (
                arr.call_method0("min")?.extract()?,
                arr.call_method0("max")?.extract()?,
            );
            if lo < 0 || hi > i128::from(max) {
                let bad = if lo < 0 { lo } else { hi };
                return Err(PyValueError::new_err(format!(
                    "{what}: expected integers from 0 to {max} ({ty}), got {bad}"
                )));
            }
            let as_u64 = arr.call_method1("astype", ("uint64",))?;
            let a: PyReadonlyArray1<'_, u64> = as_u64.extract()?;
            return Ok(a.as_array().iter().copied().collect());
        }
    }
    refuse_bare_string(obj, what, &expected, false)?;
    let iter = obj.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what}: expected {expected}, got {}",
            type_name(obj)
        ))
    })?;
    iter.enumerate()
        .map(|(i, v)| unsigned(&v?, &format!("{what}[{i}]"), max, ty))
        .collect()
}

/// A uint64 column (keys, placement hashes).
pub fn u64_column(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u64>> {
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'_, u64>>() {
        return Ok(a.as_array().iter().copied().collect());
    }
    column(obj, what, u64::MAX, "uint64")
}

/// A uint32 column (weights).
pub fn u32_column(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u32>> {
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'_, u32>>() {
        return Ok(a.as_array().to_vec());
    }
    Ok(column(obj, what, u64::from(u32::MAX), "uint32")?
        .into_iter()
        .map(|v| v as u32)
        .collect())
}

/// Keys as `remove` takes them: one key, or a column of them.
pub fn keys_or_key(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u64>> {
    if obj.cast::<PyUntypedArray>().is_err() && obj.try_iter().is_err() {
        return Ok(vec![u64_scalar(obj, what)?]);
    }
    u64_column(obj, what)
}

/// A node → zone table: a mapping, or an iterable of (node, zone) pairs, in the caller's order
/// (a repeated node in pairs reaches the core, which names it).
pub fn node_zones(table: &Bound<'_, PyAny>) -> PyResult<Vec<(String, Option<String>)>> {
    const EXPECTED: &str = "a dict or a list of (node, zone) pairs of str";
    refuse_bare_string(table, "table", EXPECTED, false)?;
    let items = match table.cast::<PyMapping>() {
        Ok(m) => m.items()?.into_any(),
        Err(_) if table.hasattr("keys")? => table.call_method0("items")?,
        Err(_) => table.clone(),
    };
    items
        .try_iter()
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "table: expected {EXPECTED}, got {}",
                type_name(table)
            ))
        })?
        .enumerate()
        .map(|(i, row)| {
            row?.extract::<(String, Option<String>)>().map_err(|_| {
                PyTypeError::new_err(format!("table[{i}]: expected a (node, zone) pair of str"))
            })
        })
        .collect()
}
