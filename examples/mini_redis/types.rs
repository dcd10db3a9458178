//! The commands on lists, hashes and sets. An aggregate that loses its last element loses
//! its key, as in Redis.

use super::commands::{wrong_arity, Failed, NOT_INTEGER, WRONGTYPE};
use super::db::{Db, Value};
use super::resp::{self, parse_i64};

/// Runs a list, hash or set command whose arity has been checked.
pub fn execute(db: &mut Db, name: &str, args: &[Vec<u8>], now: u64, out: &mut Vec<u8>) -> Result<(), Failed> {
    match name {
        "lpush" | "rpush" => {
            let Value::List(list) = db.entry(&args[1], now, || Value::List(Box::default())) else {
                return Err(WRONGTYPE.into());
            };
            for item in &args[2..] {
                if name == "lpush" {
                    list.push_front(item.clone());
                } else {
                    list.push_back(item.clone());
                }
            }
            resp::int(out, list.len() as i64);
        }
        "lpop" | "rpop" => pop(db, name, args, now, out)?,
        "llen" => match db.get(&args[1], now) {
            None => resp::int(out, 0),
            Some(Value::List(l)) => resp::int(out, l.len() as i64),
            Some(_) => return Err(WRONGTYPE.into()),
        },
        "lrange" => {
            let start = parse_i64(&args[2]).ok_or(NOT_INTEGER)?;
            let stop = parse_i64(&args[3]).ok_or(NOT_INTEGER)?;
            let list = match db.get(&args[1], now) {
                None => {
                    resp::array(out, 0);
                    return Ok(());
                }
                Some(Value::List(l)) => l,
                Some(_) => return Err(WRONGTYPE.into()),
            };
            let len = list.len() as i64;
            let start = if start < 0 { (len + start).max(0) } else { start };
            let stop = if stop < 0 { len + stop } else { stop.min(len - 1) };
            if start > stop || start >= len {
                resp::array(out, 0);
            } else {
                resp::array(out, (stop - start + 1) as usize);
                for item in list.range(start as usize..=stop as usize) {
                    resp::bulk(out, item);
                }
            }
        }
        "hset" => {
            if args.len() % 2 == 1 {
                return Err(wrong_arity("hset"));
            }
            let Value::Hash(hash) = db.entry(&args[1], now, || Value::Hash(Box::default())) else {
                return Err(WRONGTYPE.into());
            };
            let added = args[2..].chunks(2).filter(|p| hash.insert(&p[0], &p[1])).count();
            resp::int(out, added as i64);
        }
        "hget" => match db.get(&args[1], now) {
            None => resp::nil(out),
            Some(Value::Hash(h)) => match h.get(&args[2]) {
                Some(v) => resp::bulk(out, v),
                None => resp::nil(out),
            },
            Some(_) => return Err(WRONGTYPE.into()),
        },
        "hgetall" => match db.get(&args[1], now) {
            None => resp::array(out, 0),
            Some(Value::Hash(h)) => {
                resp::array(out, h.len() * 2);
                for (field, value) in h.iter() {
                    resp::bulk(out, field);
                    resp::bulk(out, value);
                }
            }
            Some(_) => return Err(WRONGTYPE.into()),
        },
        "hdel" | "srem" => {
            let removed = match db.get_mut(&args[1], now) {
                None => 0,
                Some(Value::Hash(h)) if name == "hdel" => args[2..].iter().filter(|f| h.remove(f)).count(),
                Some(Value::Set(s)) if name == "srem" => args[2..].iter().filter(|m| s.remove(m)).count(),
                Some(_) => return Err(WRONGTYPE.into()),
            };
            db.drop_if_empty(&args[1]);
            resp::int(out, removed as i64);
        }
        "sadd" => {
            let Value::Set(set) = db.entry(&args[1], now, || Value::Set(Box::default())) else {
                return Err(WRONGTYPE.into());
            };
            let added = args[2..].iter().filter(|m| set.insert(m)).count();
            resp::int(out, added as i64);
        }
        "smembers" => match db.get(&args[1], now) {
            None => resp::array(out, 0),
            Some(Value::Set(s)) => {
                resp::array(out, s.len());
                s.for_each(|member| resp::bulk(out, member));
            }
            Some(_) => return Err(WRONGTYPE.into()),
        },
        "scard" => match db.get(&args[1], now) {
            None => resp::int(out, 0),
            Some(Value::Set(s)) => resp::int(out, s.len() as i64),
            Some(_) => return Err(WRONGTYPE.into()),
        },
        _ => unreachable!("{name} is in the command table but has no implementation"),
    }
    Ok(())
}

/// `LPOP key [count]`, `RPOP key [count]`.
fn pop(db: &mut Db, name: &str, args: &[Vec<u8>], now: u64, out: &mut Vec<u8>) -> Result<(), Failed> {
    if args.len() > 3 {
        return Err(wrong_arity(name));
    }
    let count = match args.get(2) {
        None => None,
        Some(c) => match parse_i64(c) {
            Some(n) if n >= 0 => Some(n as usize),
            _ => return Err("ERR value is out of range, must be positive".into()),
        },
    };
    let list = match db.get_mut(&args[1], now) {
        None if count.is_some() => {
            resp::nil_array(out);
            return Ok(());
        }
        None => {
            resp::nil(out);
            return Ok(());
        }
        Some(Value::List(l)) => l,
        Some(_) => return Err(WRONGTYPE.into()),
    };
    let mut take = || if name == "lpop" { list.pop_front() } else { list.pop_back() };
    match count {
        None => match take() {
            Some(item) => resp::bulk(out, &item),
            None => resp::nil(out),
        },
        Some(n) => {
            let items: Vec<Vec<u8>> = std::iter::from_fn(take).take(n).collect();
            resp::array(out, items.len());
            for item in &items {
                resp::bulk(out, item);
            }
        }
    }
    db.drop_if_empty(&args[1]);
    Ok(())
}
