//! Interning of job and node names into dense 32-bit ids, so hot loops compare integers.

use hashbrown::HashMap;

use crate::error::Error;

#[derive(Debug, Clone, Default)]
pub(crate) struct Interner {
    names: Vec<Box<str>>,
    index: HashMap<Box<str>, u32, ahash::RandomState>,
}

impl Interner {
    /// An interner holding exactly these names, in id order. Fails on a repeated name.
    pub(crate) fn from_names(names: Vec<String>) -> Result<Interner, String> {
        let mut out = Interner::default();
        for name in names {
            if out.index.contains_key(name.as_str()) {
                return Err(name);
            }
            out.index
                .insert(name.as_str().into(), out.names.len() as u32);
            out.names.push(name.into_boxed_str());
        }
        Ok(out)
    }

    pub(crate) fn get(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    pub(crate) fn intern(&mut self, name: &str, what: &'static str) -> Result<u32, Error> {
        if let Some(&id) = self.index.get(name) {
            return Ok(id);
        }
        let id = u32::try_from(self.names.len())
            .ok()
            .filter(|&id| id < crate::ids::NONE)
            .ok_or(Error::Capacity(what))?;
        self.names.push(name.into());
        self.index.insert(name.into(), id);
        Ok(id)
    }

    pub(crate) fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    pub(crate) fn names(&self) -> &[Box<str>] {
        &self.names
    }
}
