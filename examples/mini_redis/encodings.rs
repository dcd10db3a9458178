//! Hashes and sets kept as Redis 7.0 keeps them while they are small, so that `HGETALL` and
//! `SMEMBERS` answer in Redis' order: a small hash is a listpack (its fields in the order
//! they were first set), a small set of integers an intset (ascending). Past Redis' default
//! limits both become hash tables, whose order is arbitrary in Redis and here alike; like
//! Redis, they never convert back.

use std::collections::{HashMap, HashSet};

use super::resp::parse_i64;

/// `hash-max-listpack-entries`: the most fields a listpack hash holds.
pub const HASH_MAX_LISTPACK_ENTRIES: usize = 128;
/// `hash-max-listpack-value`: the longest field or value a listpack hash holds.
pub const HASH_MAX_LISTPACK_VALUE: usize = 64;
/// `set-max-intset-entries`: the most members an intset holds.
pub const SET_MAX_INTSET_ENTRIES: usize = 512;

/// A hash's fields and values.
pub enum HashValue {
    /// Insertion order; a linear search over at most 128 short fields.
    Listpack(Vec<(Vec<u8>, Vec<u8>)>),
    Table(HashMap<Vec<u8>, Vec<u8>>),
}

impl Default for HashValue {
    fn default() -> Self {
        HashValue::Listpack(Vec::new())
    }
}

impl HashValue {
    /// The number of fields.
    pub fn len(&self) -> usize {
        match self {
            HashValue::Listpack(pairs) => pairs.len(),
            HashValue::Table(table) => table.len(),
        }
    }

    /// Whether there is no field.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match self {
            HashValue::Listpack(pairs) => pairs.iter().find(|(f, _)| f == field).map(|(_, v)| v.as_slice()),
            HashValue::Table(table) => table.get(field).map(Vec::as_slice),
        }
    }

    /// Sets `field` (in place if it exists); whether it is new.
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        if field.len().max(value.len()) > HASH_MAX_LISTPACK_VALUE {
            self.convert_to_table();
        }
        match self {
            HashValue::Listpack(pairs) => {
                if let Some((_, old)) = pairs.iter_mut().find(|(f, _)| f == field) {
                    *old = value.to_vec();
                    return false;
                }
                pairs.push((field.to_vec(), value.to_vec()));
                if pairs.len() > HASH_MAX_LISTPACK_ENTRIES {
                    self.convert_to_table();
                }
                true
            }
            HashValue::Table(table) => table.insert(field.to_vec(), value.to_vec()).is_none(),
        }
    }

    /// Removes `field`, keeping the others' order; whether it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self {
            HashValue::Listpack(pairs) => match pairs.iter().position(|(f, _)| f == field) {
                Some(i) => {
                    pairs.remove(i);
                    true
                }
                None => false,
            },
            HashValue::Table(table) => table.remove(field).is_some(),
        }
    }

    /// The fields and values, in Redis' order for a listpack.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let (listpack, table) = match self {
            HashValue::Listpack(pairs) => (Some(pairs.iter().map(|(f, v)| (&f[..], &v[..]))), None),
            HashValue::Table(table) => (None, Some(table.iter().map(|(f, v)| (&f[..], &v[..])))),
        };
        listpack.into_iter().flatten().chain(table.into_iter().flatten())
    }

    fn convert_to_table(&mut self) {
        if let HashValue::Listpack(pairs) = self {
            *self = HashValue::Table(std::mem::take(pairs).into_iter().collect());
        }
    }
}

/// A set's members.
pub enum SetValue {
    /// Every member an integer (as `string2ll` reads it), ascending.
    Intset(Vec<i64>),
    Table(HashSet<Vec<u8>>),
}

impl Default for SetValue {
    fn default() -> Self {
        SetValue::Intset(Vec::new())
    }
}

impl SetValue {
    /// The number of members.
    pub fn len(&self) -> usize {
        match self {
            SetValue::Intset(ints) => ints.len(),
            SetValue::Table(table) => table.len(),
        }
    }

    /// Whether there is no member.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds `member`; whether it is new.
    pub fn insert(&mut self, member: &[u8]) -> bool {
        let ints = match self {
            SetValue::Table(table) => return table.insert(member.to_vec()),
            SetValue::Intset(ints) => ints,
        };
        match parse_i64(member) {
            Some(n) => {
                let Err(at) = ints.binary_search(&n) else { return false };
                ints.insert(at, n);
                if ints.len() > SET_MAX_INTSET_ENTRIES {
                    *self = SetValue::Table(as_strings(ints));
                }
                true
            }
            None => {
                let mut table = as_strings(ints);
                table.insert(member.to_vec());
                *self = SetValue::Table(table);
                true
            }
        }
    }

    /// Removes `member`; whether it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self {
            SetValue::Intset(ints) => match parse_i64(member).map(|n| ints.binary_search(&n)) {
                Some(Ok(at)) => {
                    ints.remove(at);
                    true
                }
                _ => false,
            },
            SetValue::Table(table) => table.remove(member),
        }
    }

    /// Calls `f` with each member, ascending for an intset.
    pub fn for_each(&self, mut f: impl FnMut(&[u8])) {
        match self {
            SetValue::Intset(ints) => ints.iter().for_each(|n| f(n.to_string().as_bytes())),
            SetValue::Table(table) => table.iter().for_each(|m| f(m)),
        }
    }
}

fn as_strings(ints: &[i64]) -> HashSet<Vec<u8>> {
    ints.iter().map(|n| n.to_string().into_bytes()).collect()
}
