//! Redis Cluster: which node owns a key's slot, learnt from CLUSTER SLOTS and corrected by
//! MOVED redirects. The slot map is shared by the users of a worker thread (the `Local` of
//! the kind: one map, not one per user); each user holds one connection per node it sends
//! to, so a test opens at most users × masters connections, and exactly that when every
//! user's keys spread over every master.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use tokio::time::Instant;

use crate::protocol::redis::Conn;
use crate::protocol::redis::command::{CommandStep, judge, render_command};
use crate::protocol::redis::link::{Hello, Links};
use crate::protocol::redis::resp::{self, Reply, Type};
use crate::protocol::{Io, Record, StepEnd};
use crate::script::reply::Code;
use crate::stats::Outcome;

/// Redirects (MOVED, ASK) and retries (TRYAGAIN, CLUSTERDOWN, LOADING) one request follows
/// before it counts as the server error it last got.
const MAX_TRIES: usize = 5;

/// Slots in a Redis Cluster.
pub const SLOTS: usize = 16384;

/// The slot of `key`: CRC16 (XMODEM) of the key, or of its `{hash tag}` when it has a
/// non-empty one, modulo 16384 — the cluster specification's `HASH_SLOT`.
pub fn slot(key: &[u8]) -> u16 {
    let tagged = memchr::memchr(b'{', key).and_then(|open| {
        let rest = &key[open + 1..];
        let close = memchr::memchr(b'}', rest)?;
        (close > 0).then(|| &rest[..close])
    });
    crc16(tagged.unwrap_or(key)) % SLOTS as u16
}

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot map of one worker's users.
#[derive(Default)]
pub struct Topology {
    nodes: RefCell<Vec<SocketAddr>>,
    /// Index into `nodes` of each slot's master; `u16::MAX` while unknown.
    owner: RefCell<Vec<u16>>,
}

impl Topology {
    pub fn is_known(&self) -> bool {
        !self.nodes.borrow().is_empty()
    }

    /// The master of `slot`, if known.
    pub fn owner(&self, slot: u16) -> Option<SocketAddr> {
        let i = *self.owner.borrow().get(usize::from(slot))?;
        self.nodes.borrow().get(usize::from(i)).copied()
    }

    /// Any master: where a command without a key goes.
    pub fn any(&self) -> Option<SocketAddr> {
        self.nodes.borrow().first().copied()
    }

    /// A MOVED redirect: `slot` is now served by `addr`.
    pub fn moved(&self, slot: u16, addr: SocketAddr) {
        let i = self.node_index(addr);
        if let Some(o) = self.owner.borrow_mut().get_mut(usize::from(slot)) {
            *o = i;
        }
    }

    fn node_index(&self, addr: SocketAddr) -> u16 {
        let mut nodes = self.nodes.borrow_mut();
        match nodes.iter().position(|n| *n == addr) {
            Some(i) => i as u16,
            None => {
                nodes.push(addr);
                (nodes.len() - 1) as u16
            }
        }
    }

    /// Replaces the map with a CLUSTER SLOTS reply; false when the reply is not one.
    pub fn load(&self, reply: &Reply<'_>) -> bool {
        if reply.kind != Type::Array {
            return false;
        }
        let mut owner = vec![u16::MAX; SLOTS];
        let mut nodes: Vec<SocketAddr> = Vec::new();
        for i in 0..reply.len {
            let Some(range) = reply.element(i) else {
                return false;
            };
            let (Some(start), Some(end), Some(master)) = (
                range.element(0).and_then(|r| r.integer()),
                range.element(1).and_then(|r| r.integer()),
                range.element(2),
            ) else {
                return false;
            };
            let Some(addr) = node_addr(&master) else {
                return false;
            };
            let idx = match nodes.iter().position(|n| *n == addr) {
                Some(i) => i,
                None => {
                    nodes.push(addr);
                    nodes.len() - 1
                }
            };
            let (start, end) = (start.max(0) as usize, (end.max(0) as usize).min(SLOTS - 1));
            for o in owner.iter_mut().take(end + 1).skip(start) {
                *o = idx as u16;
            }
        }
        if nodes.is_empty() {
            return false;
        }
        *self.nodes.borrow_mut() = nodes;
        *self.owner.borrow_mut() = owner;
        true
    }
}

/// `[ip, port, id, …]` of a CLUSTER SLOTS entry.
fn node_addr(node: &Reply<'_>) -> Option<SocketAddr> {
    let ip = std::str::from_utf8(node.element(0)?.data).ok()?;
    let port = u16::try_from(node.element(1)?.integer()?).ok()?;
    format!("{ip}:{port}")
        .parse()
        .ok()
        .or_else(|| format!("[{ip}]:{port}").parse().ok())
}

/// `MOVED 3999 127.0.0.1:6381` / `ASK 3999 127.0.0.1:6381`: the slot and the node.
pub fn redirect(error: &[u8]) -> Option<(bool, u16, SocketAddr)> {
    let text = std::str::from_utf8(error).ok()?;
    let mut words = text.split_ascii_whitespace();
    let ask = match words.next()? {
        "MOVED" => false,
        "ASK" => true,
        _ => return None,
    };
    let slot = words.next()?.parse().ok()?;
    let addr = words.next()?;
    let addr = addr.parse().ok().or_else(|| {
        let (host, port) = addr.rsplit_once(':')?;
        format!("[{host}]:{port}").parse().ok()
    })?;
    Some((ask, slot, addr))
}

/// The key a command is routed by: the first key argument of the commands a load test sends
/// (`GET k`, `SET k v`, `HGET k f`, `EVAL script 1 k`), none for keyless ones (`PING`,
/// `SCRIPT LOAD`) and for EVAL without keys.
pub fn key_index(name: &str, args: usize) -> Option<usize> {
    match name {
        "PING" | "ECHO" | "SCRIPT" | "INFO" | "TIME" | "DBSIZE" | "CLUSTER" | "CLIENT"
        | "CONFIG" | "FLUSHALL" | "FLUSHDB" | "PUBLISH" | "SELECT" | "AUTH" | "HELLO" => None,
        // EVAL script numkeys key …: the key comes third, when there is one.
        "EVAL" | "EVALSHA" | "EVAL_RO" | "EVALSHA_RO" | "FCALL" | "FCALL_RO" => {
            (args > 3).then_some(3)
        }
        _ => (args > 1).then_some(1),
    }
}

/// Loads the slot map from `conn` (CLUSTER SLOTS) by `deadline`.
pub async fn refresh(
    topo: &Topology,
    conn: &mut Conn,
    deadline: Instant,
    io: &mut Io<'_>,
) -> Result<(), Outcome> {
    let out = &mut *io.out;
    out.clear();
    resp::write_command(out, [&b"CLUSTER"[..], b"SLOTS"].into_iter());
    conn.send(out).await?;
    let at = conn.next(deadline).await?;
    let loaded = conn.reply(at).is_some_and(|r| topo.load(&r));
    if !loaded {
        crate::protocol::reason::note(
            Outcome::Protocol,
            "CLUSTER SLOTS gave no slot map: is the URL's node in a cluster (?cluster=true)?",
        );
        return Err(Outcome::Protocol);
    }
    Ok(())
}

/// One copy of a command in flight.
struct Copy {
    /// Its bytes in the step's rendered commands.
    bytes: Range<usize>,
    slot: Option<u16>,
    addr: SocketAddr,
    /// Send ASKING first (an ASK redirect), or SCRIPT LOAD first (a NOSCRIPT on this node).
    asking: bool,
    reload: Option<usize>,
    tries: usize,
}

/// What a reply asks of its copy.
enum Next {
    Done,
    Again,
}

/// What a round's replies ask of the next round.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Wait {
    None,
    /// TRYAGAIN: the same node, a moment later.
    Retry,
    /// CLUSTERDOWN, LOADING: a moment later, after reloading the slot map.
    Refresh,
}

/// A command step on a cluster: each copy goes to the node owning its key's slot (copies
/// for one node in one write, as a pipeline is split by node), redirects are followed and
/// retries waited for, each copy timed from the first write to its final reply. Allocates a
/// small list per step, unlike the standalone path: a cluster's routing is per copy.
pub async fn command(
    hello: &Hello,
    scripts: &[(String, Vec<u8>)],
    topo: &Topology,
    links: &mut Links,
    c: &CommandStep,
    io: &mut Io<'_>,
) -> StepEnd {
    let mut copies = Vec::with_capacity(c.copies);
    // Rendered apart from the user's write buffer: opening a node's connection writes there.
    let mut wire = Vec::new();
    {
        let (cx, _, buf) = io.split();
        for _ in 0..c.copies {
            let start = wire.len();
            render_command(&mut wire, &c.args, buf, &cx);
            // The key as rendered into this copy (rendering it again would draw new random
            // values): read back from the command's own RESP.
            let slot = c.key.and_then(|k| {
                let (cmd, _) = resp::parse(&wire[start..]).ok()??;
                Some(slot(cmd.element(k)?.data))
            });
            let addr = slot
                .and_then(|s| topo.owner(s))
                .or_else(|| topo.any())
                .unwrap_or(links.main_addr);
            copies.push(Copy {
                bytes: start..wire.len(),
                slot,
                addr,
                asking: false,
                reload: None,
                tries: 0,
            });
        }
    }
    let per_copy = copies.first().map_or(0, |c| c.bytes.len()) as u64;
    let sent_at = Instant::now();
    let deadline = sent_at + c.timeout;
    let mut pending: Vec<usize> = (0..copies.len()).collect();
    // Copies recorded already: a failure later in the step fails only the others.
    let mut answered = vec![false; copies.len()];
    while !pending.is_empty() {
        // Each node's copies, fixed before any reply is read: a redirect read from one node
        // changes its copy's node for the next round, not this one.
        let mut nodes: Vec<(SocketAddr, Vec<usize>)> = Vec::new();
        for &i in &pending {
            match nodes.iter_mut().find(|(a, _)| *a == copies[i].addr) {
                Some((_, mine)) => mine.push(i),
                None => nodes.push((copies[i].addr, vec![i])),
            }
        }
        // Write every node's batch, then read each node's replies in order.
        for (addr, mine) in &nodes {
            let addr = *addr;
            if let Err(o) = ensure_link(hello, links, addr, io).await {
                return fail(io, c, &pending, o, per_copy);
            }
            let mut batch = std::mem::take(io.buf);
            batch.clear();
            for &i in mine {
                let cp = &copies[i];
                if let Some(s) = cp.reload.and_then(|s| scripts.get(s)) {
                    resp::write_command(&mut batch, [&b"SCRIPT"[..], b"LOAD", &s.1].into_iter());
                }
                if cp.asking {
                    resp::write_command(&mut batch, [&b"ASKING"[..]].into_iter());
                }
                batch.extend_from_slice(&wire[cp.bytes.clone()]);
            }
            let sent = link(links, addr).send(&batch).await;
            *io.buf = batch;
            if let Err(o) = sent {
                return fail(io, c, &pending, o, per_copy);
            }
        }
        let mut again = Vec::new();
        let mut wait = Wait::None;
        for (addr, mine) in &nodes {
            let addr = *addr;
            for &i in mine {
                let skip = usize::from(copies[i].asking) + usize::from(copies[i].reload.is_some());
                let conn = link(links, addr);
                let mut at = None;
                for _ in 0..=skip {
                    match conn.next(deadline).await {
                        Ok(a) => at = Some(a),
                        Err(o) => {
                            let left: Vec<usize> =
                                pending.iter().copied().filter(|j| !answered[*j]).collect();
                            return fail(io, c, &left, o, per_copy);
                        }
                    }
                }
                let Some(at) = at else { continue };
                let done = Instant::now();
                let Some(reply) = conn.reply(at.clone()) else {
                    let left: Vec<usize> =
                        pending.iter().copied().filter(|j| !answered[*j]).collect();
                    return fail(io, c, &left, Outcome::Protocol, per_copy);
                };
                let cp = &mut copies[i];
                cp.asking = false;
                cp.reload = None;
                let next = follow(scripts, topo, c, cp, &reply, io, &mut wait);
                match next {
                    Next::Again => again.push(i),
                    Next::Done => {
                        answered[i] = true;
                        let v = judge(&c.rules, io.vars, &reply, io.buf, done - sent_at);
                        io.record_reply(c.stat, v, per_copy, at.len() as u64, sent_at, done);
                    }
                }
            }
        }
        if wait != Wait::None {
            // The cluster is moving: give it a moment.
            tokio::time::sleep(Duration::from_millis(20)).await;
            if Instant::now() >= deadline {
                return fail(io, c, &again, Outcome::Timeout, per_copy);
            }
        }
        if wait == Wait::Refresh && refresh(topo, &mut links.main, deadline, io).await.is_ok() {
            for &i in &again {
                if let Some(owner) = copies[i].slot.and_then(|s| topo.owner(s)) {
                    copies[i].addr = owner;
                }
            }
        }
        pending = again;
    }
    StepEnd::Next
}

/// Whether `reply` sends its copy elsewhere (or to try again), updating the slot map.
fn follow(
    scripts: &[(String, Vec<u8>)],
    topo: &Topology,
    c: &CommandStep,
    cp: &mut Copy,
    reply: &Reply<'_>,
    io: &mut Io<'_>,
    wait: &mut Wait,
) -> Next {
    let Some(code) = reply.error_code() else {
        return Next::Done;
    };
    if cp.tries >= MAX_TRIES {
        return Next::Done;
    }
    cp.tries += 1;
    match code {
        b"MOVED" | b"ASK" => match redirect(reply.data) {
            Some((ask, slot, addr)) => {
                if !ask {
                    topo.moved(slot, addr);
                }
                cp.addr = addr;
                cp.asking = ask;
                Next::Again
            }
            None => Next::Done,
        },
        b"TRYAGAIN" => {
            *wait = Wait::Retry.max(*wait);
            Next::Again
        }
        // The cluster lost a master or a node is loading its data: ask it where the slots
        // are now, then send again.
        b"CLUSTERDOWN" | b"LOADING" => {
            *wait = Wait::Refresh;
            Next::Again
        }
        b"NOSCRIPT" if c.evalsha => {
            let (cx, _, buf) = io.split();
            buf.clear();
            if let Some(sha) = c.args.get(1) {
                sha.render(buf, &cx);
            }
            cp.reload = scripts
                .iter()
                .position(|(s, _)| s.as_bytes().eq_ignore_ascii_case(buf));
            if cp.reload.is_some() {
                Next::Again
            } else {
                Next::Done
            }
        }
        _ => Next::Done,
    }
}

/// The user's connection to `addr`, which `ensure_link` made sure exists.
fn link(links: &mut Links, addr: SocketAddr) -> &mut Conn {
    if addr == links.main_addr {
        return &mut links.main;
    }
    match links.others.iter().position(|(a, _)| *a == addr) {
        Some(i) => &mut links.others[i].1,
        // Not reached (ensure_link ran first); the main link rather than a panic.
        None => &mut links.main,
    }
}

/// Opens the user's connection to `addr` if it has none: counted as a connection opened and
/// used (it carries the requests that made it).
async fn ensure_link(
    hello: &Hello,
    links: &mut Links,
    addr: SocketAddr,
    io: &mut Io<'_>,
) -> Result<(), Outcome> {
    if addr == links.main_addr || links.others.iter().any(|(a, _)| *a == addr) {
        return Ok(());
    }
    let conn = hello.open(addr, io).await?;
    links.others.push((addr, conn));
    io.opened_shared();
    Ok(())
}

/// Copies `left` failed with `o`: recorded, and the user's connections go (a late reply on
/// any of them would be taken for the next command's).
fn fail(io: &mut Io<'_>, c: &CommandStep, left: &[usize], o: Outcome, sent: u64) -> StepEnd {
    let code = Code::None;
    for _ in left {
        let mut rec = Record::failed(o, sent);
        rec.code = code;
        io.record(c.stat, rec);
    }
    StepEnd::Broken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_those_of_the_cluster_specification() {
        // Values from the specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"user:1000"), slot(b"user:1000"));
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
        assert_ne!(
            slot(b"foo{}{bar}"),
            slot(b"bar"),
            "an empty tag hashes the whole key"
        );
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
    }

    #[test]
    fn redirects_name_the_slot_and_the_node() {
        assert_eq!(
            redirect(b"MOVED 3999 127.0.0.1:6381"),
            Some((false, 3999, "127.0.0.1:6381".parse().unwrap()))
        );
        assert_eq!(
            redirect(b"ASK 3999 ::1:6381"),
            Some((true, 3999, "[::1]:6381".parse().unwrap()))
        );
        assert_eq!(redirect(b"ERR wrong"), None);
        assert_eq!(redirect(b"MOVED x y"), None);
    }

    #[test]
    fn keys_route_by_their_first_key_argument() {
        assert_eq!(key_index("GET", 2), Some(1));
        assert_eq!(key_index("EVALSHA", 4), Some(3));
        assert_eq!(key_index("EVALSHA", 3), None);
        assert_eq!(key_index("PING", 1), None);
    }
}
