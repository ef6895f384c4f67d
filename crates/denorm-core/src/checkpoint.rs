//! Checkpoints of the operators' state: a [`Dataflow`] written as bytes at a
//! batch boundary and read back into a dataflow built from the same plans,
//! so that a restart reads its state instead of recomputing it from the
//! input rows.
//!
//! ```text
//!  VERSION u32 · position u64 · views: count, each name
//!  nodes: count, each: structural hash u64 · length u64 · kind u8 · the operator's state
//! ```
//!
//! Every node is identified by its structural hash: its own definition and
//! its inputs' structural hashes (the graph deduplicates nodes by the
//! same), whatever its id. [`Dataflow::load_checkpoint`] loads a dataflow of
//! the same views; [`Saved`] reads a checkpoint node by node (each state is
//! length-prefixed) so that a dataflow of *other* views takes the state of
//! every node it shares with it ([`Dataflow::views_held`] says which views
//! are wholly held, [`Dataflow::load_nodes`] loads from several sources:
//! the checkpoint and a dataflow built from the input rows for the views
//! that changed). Version 1 (nodes in order, each identified by a hash of
//! its signature naming its inputs by id) loads only into the same views;
//! anything else is a [`CheckpointError::Mismatch`] and the caller rebuilds
//! from the input rows. The state follows the in-memory representation
//! (packed row bytes, an arrangement's small groups as their exact buffers):
//!
//! * `Arrange`: each small group's buffer as it is, each large group's rows
//!   (`index/checkpoint.rs`);
//! * `Reduce`: each group's key, row count and accumulators
//!   (`reduce/checkpoint.rs`); numeric sums holding an out-of-range error
//!   are not saved (unsupported: the caller keeps the input-row restart);
//! * `Distinct`, `Threshold`: the count per row; `TopK`, `ScalarFilter`:
//!   their kept rows, read back through the operator's own `step` (a
//!   `TopK` keeps every row, so its state is a function of them);
//! * `Values`: whether it was emitted;
//! * `JoinTopK` (a bounded top-k refilled from its join's arrangements):
//!   per partition its key, held and total copies and its held rows in
//!   order, interned again on load (`join_topk/checkpoint.rs`; kind 8,
//!   added without a version bump: older files never hold it).
//!
//! Invariants: a dataflow loaded from a checkpoint holds exactly the state
//! of the one saved (`state_bytes` equal, and every later batch gives the
//! same outputs; tested per operator on random workloads); a failed view or
//! a released node is never saved; a truncated input is an error, never a
//! panic. Row bytes are not validated on load (decoding garbled rows
//! panics): the file holding a checkpoint carries a checksum, checked
//! before this module reads it (the `denorm` crate's `engine/checkpoint.rs`).

use denorm_types::{Diff, Position, Row, RowRef};

use crate::executor::Dataflow;
use crate::graph::Operator;

/// The version of the state encoding; bump it when any operator's layout
/// changes (older checkpoints are then refused and rebuilt, or migrated).
/// Version 3: rows in the short decimal encoding of doubles
/// (`denorm_types::row`); rows read from versions 1 and 2 (every double in
/// tag 7) are re-packed as they are read ([`Reader::repacks_rows`]).
pub const VERSION: u32 = 3;
/// The first version whose rows are in today's row encoding.
const ROWS_REPACKED_BEFORE: u32 = 3;

/// Why a checkpoint cannot be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("an operator's state cannot be checkpointed: {0}")]
    Unsupported(String),
    #[error("the checkpoint was taken of other views: {0}")]
    Mismatch(String),
    #[error("the checkpoint is corrupt: {0}")]
    Corrupt(String),
}

/// Appends the encoding: integers little-endian, byte strings and rows
/// length-prefixed (u32).
#[derive(Debug, Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn count(&mut self, n: usize) {
        self.u64(n as u64);
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.buf.extend_from_slice(b);
    }
    pub fn row(&mut self, row: &Row) {
        self.bytes(row.as_bytes());
    }
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
}

/// Reads what [`Writer`] wrote; every read is bounds-checked (a truncated
/// input is [`CheckpointError::Corrupt`], never a panic).
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
    /// The rows were written before doubles had the short decimal form:
    /// each is re-packed as it is read.
    repack: bool,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, at: 0, repack: false }
    }
    /// From now on every row read is re-packed in today's encoding (the
    /// input was written in an older one: `denorm_types::RowRef::repacked`).
    pub fn repack_rows(&mut self) {
        self.repack = true;
    }
    /// Whether rows read are re-packed (operators reading packed rows as
    /// raw bytes re-pack them alike).
    pub fn repacks_rows(&self) -> bool {
        self.repack
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], CheckpointError> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.buf.len());
        let end = end.ok_or_else(|| CheckpointError::Corrupt(format!("truncated at byte {}", self.at)))?;
        let out = &self.buf[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], CheckpointError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    pub fn u8(&mut self) -> Result<u8, CheckpointError> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32, CheckpointError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, CheckpointError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64, CheckpointError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    /// A count of items that follow, each at least one byte: bounded by
    /// the bytes left, so a garbled count cannot ask for a huge allocation.
    pub fn count(&mut self) -> Result<usize, CheckpointError> {
        let n = self.u64()?;
        if n > (self.buf.len() - self.at) as u64 {
            return Err(CheckpointError::Corrupt(format!("a count of {n} past the end at byte {}", self.at)));
        }
        Ok(n as usize)
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], CheckpointError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn row(&mut self) -> Result<Row, CheckpointError> {
        let bytes = self.bytes()?;
        let row = RowRef::from_prefix(bytes, bytes.len());
        Ok(if self.repack { row.repacked() } else { row.to_row() })
    }
    pub fn str(&mut self) -> Result<&'a str, CheckpointError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| CheckpointError::Corrupt("a name is not UTF-8".into()))
    }
    /// Rows with a diff each: `(row, diff)` pairs.
    pub fn changes(&mut self) -> Result<Vec<(Row, Diff)>, CheckpointError> {
        let n = self.count()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let row = self.row()?;
            out.push((row, self.i64()?));
        }
        Ok(out)
    }
    pub fn at_end(&self) -> bool {
        self.at == self.buf.len()
    }
}

/// Writes `(row, diff)` pairs as [`Reader::changes`] reads them.
pub(crate) fn write_changes<'r>(w: &mut Writer, n: usize, changes: impl Iterator<Item = (&'r Row, Diff)>) {
    w.count(n);
    for (row, diff) in changes {
        w.row(row);
        w.i64(diff);
    }
}

/// FNV-1a of a node's signature (version 1: the signature names its
/// inputs by node id, so it identifies a node only within the same views).
fn signature_hash(signature: &str) -> u64 {
    fnv(0xcbf2_9ce4_8422_2325u64, signature.as_bytes())
}

fn fnv(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Each node's structural hash (version 2): its own definition and its
/// inputs' structural hashes, so that a node is recognised in a dataflow
/// of other views, whatever the order its nodes were built in.
fn structural_hashes(signatures: &[&str], nodes: &[crate::graph::Node]) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::with_capacity(nodes.len());
    for (node, signature) in nodes.iter().zip(signatures) {
        // The graph's signature ends with " <- [input ids]".
        let own = signature.rsplit_once(" <- ").map_or(*signature, |(own, _)| own);
        let mut h = fnv(0xcbf2_9ce4_8422_2325u64, own.as_bytes());
        for &input in &node.inputs {
            h = fnv(h, b"<-");
            h = fnv(h, &out[input].to_le_bytes());
        }
        out.push(h);
    }
    out
}

const STATELESS: u8 = 0;
const ARRANGE: u8 = 1;
const REDUCE: u8 = 2;
const DISTINCT: u8 = 3;
const TOPK: u8 = 4;
const THRESHOLD: u8 = 5;
const SCALAR_FILTER: u8 = 6;
const VALUES: u8 = 7;
const JOIN_TOPK: u8 = 8;

/// Appends one operator's kind and state.
fn save_operator(operator: &Operator, w: &mut Writer) -> Result<(), CheckpointError> {
    match operator {
        Operator::Input { .. }
        | Operator::Filter(_)
        | Operator::Map(_)
        | Operator::Join(_)
        | Operator::Union
        | Operator::Negate => w.u8(STATELESS),
        Operator::Arrange(index) => {
            w.u8(ARRANGE);
            index.save(w);
        }
        Operator::Reduce(reduce) => {
            w.u8(REDUCE);
            reduce.save(w)?;
        }
        Operator::Distinct(distinct) => {
            w.u8(DISTINCT);
            distinct.save(w);
        }
        Operator::TopK(top) => {
            w.u8(TOPK);
            top.save(w);
        }
        Operator::Threshold(threshold) => {
            w.u8(THRESHOLD);
            threshold.save(w);
        }
        Operator::ScalarFilter(filter) => {
            w.u8(SCALAR_FILTER);
            filter.save(w);
        }
        Operator::Values(values) => {
            w.u8(VALUES);
            w.u8(u8::from(values.emitted()));
        }
        Operator::JoinTopK(top) => {
            w.u8(JOIN_TOPK);
            top.save(w);
        }
        Operator::Released => return Err(CheckpointError::Unsupported("a released node".into())),
    }
    Ok(())
}

/// Reads the state of a `kind` node into `operator` (freshly built).
fn load_operator(id: usize, kind: u8, operator: &mut Operator, r: &mut Reader<'_>) -> Result<(), CheckpointError> {
    match (kind, operator) {
        (
            STATELESS,
            Operator::Input { .. }
            | Operator::Filter(_)
            | Operator::Map(_)
            | Operator::Join(_)
            | Operator::Union
            | Operator::Negate,
        ) => {}
        (ARRANGE, Operator::Arrange(index)) => index.load(r)?,
        (REDUCE, Operator::Reduce(reduce)) => reduce.load(r)?,
        (DISTINCT, Operator::Distinct(distinct)) => distinct.load(r)?,
        (TOPK, Operator::TopK(top)) => top.load(r)?,
        (THRESHOLD, Operator::Threshold(threshold)) => threshold.load(r)?,
        (SCALAR_FILTER, Operator::ScalarFilter(filter)) => filter.load(r)?,
        (JOIN_TOPK, Operator::JoinTopK(top)) => top.load(r)?,
        (VALUES, Operator::Values(values)) => {
            if r.u8()? != 0 {
                values.step();
            }
        }
        (kind, _) => return Err(CheckpointError::Mismatch(format!("operator {id} is not of kind {kind}"))),
    }
    Ok(())
}

/// A dataflow's checkpoint (version 2), read: its position, its views'
/// names and each node's kind and encoded state by structural hash. Nodes
/// are loaded from it one by one ([`Dataflow::load_nodes`]), so a dataflow
/// of other views takes the state of the nodes it shares with it.
#[derive(Debug)]
pub struct Saved<'a> {
    pub position: Position,
    pub views: Vec<String>,
    nodes: std::collections::HashMap<u64, (u8, &'a [u8])>,
    /// Its rows are in an older encoding (version 2): re-packed on load.
    repack: bool,
}

impl<'a> Saved<'a> {
    /// Reads a dataflow's checkpoint; one of version 1 (whose nodes cannot
    /// be told apart across views) is a [`CheckpointError::Mismatch`].
    pub fn read(r: &mut Reader<'a>) -> Result<Saved<'a>, CheckpointError> {
        let version = r.u32()?;
        if !(2..=VERSION).contains(&version) {
            return Err(CheckpointError::Mismatch(format!(
                "state version {version} (its operators load only into the same views), this denorm writes {VERSION}"
            )));
        }
        if version < ROWS_REPACKED_BEFORE {
            r.repack_rows();
        }
        Self::read_body(r)
    }

    fn read_body(r: &mut Reader<'a>) -> Result<Saved<'a>, CheckpointError> {
        let position = Position(r.u64()?);
        let views = (0..r.count()?).map(|_| r.str().map(String::from)).collect::<Result<Vec<_>, _>>()?;
        let mut nodes = std::collections::HashMap::new();
        for _ in 0..r.count()? {
            let hash = r.u64()?;
            let len = r.count()?;
            let mut node = Reader::new(r.take(len)?);
            let kind = node.u8()?;
            nodes.insert(hash, (kind, &node.buf[node.at..]));
        }
        Ok(Saved { position, views, nodes, repack: r.repack })
    }

    /// Whether it holds the state of a node of this structural hash.
    fn holds(&self, hash: u64) -> bool {
        self.nodes.contains_key(&hash)
    }
}

impl Dataflow {
    /// Appends the state of every node and the position to `w`. Refused
    /// before the first batch, with a failed view, a view keeping its own
    /// rows, or an operator that cannot be saved.
    pub fn save_checkpoint(&self, w: &mut Writer) -> Result<(), CheckpointError> {
        let position = self.position.ok_or_else(|| CheckpointError::Unsupported("no batch applied yet".into()))?;
        if let Some(view) = self.views.iter().find(|v| v.error.is_some() || v.state.is_some()) {
            return Err(CheckpointError::Unsupported(format!("view {} failed or keeps its rows", view.name)));
        }
        w.u32(VERSION);
        w.u64(position.0);
        w.count(self.views.len());
        for view in &self.views {
            w.str(&view.name);
        }
        let signatures = self.graph.signatures();
        let hashes = structural_hashes(&signatures, &self.graph.nodes);
        w.count(self.graph.nodes.len());
        for (node, hash) in self.graph.nodes.iter().zip(hashes) {
            if node.failed.is_some() {
                return Err(CheckpointError::Unsupported("a failed node".into()));
            }
            w.u64(hash);
            let at = w.buf.len();
            w.u64(0);
            save_operator(&node.operator, w)?;
            let len = (w.buf.len() - at - 8) as u64;
            w.buf[at..at + 8].copy_from_slice(&len.to_le_bytes());
        }
        Ok(())
    }

    /// Loads a checkpoint written by [`Dataflow::save_checkpoint`] into this
    /// dataflow, freshly built (no batch applied) from the same plans in the
    /// same order; returns its position. On an error the dataflow may hold
    /// part of the state: drop it and build another.
    pub fn load_checkpoint(&mut self, r: &mut Reader<'_>) -> Result<Position, CheckpointError> {
        let version = r.u32()?;
        if version < ROWS_REPACKED_BEFORE {
            r.repack_rows();
        }
        let saved = match version {
            1 => return self.load_version_1(r),
            2..=VERSION => Saved::read_body(r)?,
            _ => {
                return Err(CheckpointError::Mismatch(format!(
                    "state version {version}, this denorm reads 1 to {VERSION}"
                )))
            }
        };
        let names: Vec<&str> = self.views.iter().map(|v| v.name.as_str()).collect();
        if saved.views != names {
            return Err(CheckpointError::Mismatch(format!("views {:?}, now {names:?}", saved.views)));
        }
        self.load_nodes(&[&saved], saved.position)
    }

    /// Per view, whether every node it reads is held by one of `sources`:
    /// such a view's state can be loaded ([`Dataflow::load_nodes`]).
    pub fn views_held(&self, sources: &[&Saved<'_>]) -> Vec<bool> {
        let hashes = structural_hashes(&self.graph.signatures(), &self.graph.nodes);
        let held: Vec<bool> = hashes.iter().map(|&h| sources.iter().any(|s| s.holds(h))).collect();
        self.view_nodes()
            .map(|(_, node)| {
                let mut stack = vec![node];
                let mut seen = vec![false; held.len()];
                while let Some(id) = stack.pop() {
                    if std::mem::replace(&mut seen[id], true) {
                        continue;
                    }
                    if !held[id] {
                        return false;
                    }
                    stack.extend(&self.graph.nodes[id].inputs);
                }
                true
            })
            .collect()
    }

    /// Loads every node of this dataflow, freshly built (no batch applied),
    /// from the first of `sources` holding a node of its structure, and
    /// sets its position to `position`. The caller makes sure every source
    /// is at `position` (the same input rows). A node held by none is a
    /// [`CheckpointError::Mismatch`]; on any error the dataflow may hold
    /// part of the state: drop it.
    pub fn load_nodes(&mut self, sources: &[&Saved<'_>], position: Position) -> Result<Position, CheckpointError> {
        if self.position.is_some() {
            return Err(CheckpointError::Mismatch("the dataflow already applied a batch".into()));
        }
        let hashes = structural_hashes(&self.graph.signatures(), &self.graph.nodes);
        for (id, hash) in hashes.into_iter().enumerate() {
            let Some((kind, bytes, repack)) =
                sources.iter().find_map(|s| s.nodes.get(&hash).map(|&(kind, bytes)| (kind, bytes, s.repack)))
            else {
                return Err(CheckpointError::Mismatch(format!("operator {id} has another definition")));
            };
            let mut r = Reader { buf: bytes, at: 0, repack };
            load_operator(id, kind, &mut self.graph.nodes[id].operator, &mut r)?;
            if !r.at_end() {
                return Err(CheckpointError::Corrupt(format!("operator {id}'s state is longer than it reads")));
            }
        }
        self.position = Some(position);
        Ok(position)
    }

    /// Version 1: every node, in order, identified by its signature.
    fn load_version_1(&mut self, r: &mut Reader<'_>) -> Result<Position, CheckpointError> {
        if self.position.is_some() {
            return Err(CheckpointError::Mismatch("the dataflow already applied a batch".into()));
        }
        let position = Position(r.u64()?);
        let views = r.count()?;
        if views != self.views.len() {
            return Err(CheckpointError::Mismatch(format!("{views} views, now {}", self.views.len())));
        }
        for view in &self.views {
            let name = r.str()?;
            if name != view.name {
                return Err(CheckpointError::Mismatch(format!("view {name}, now {}", view.name)));
            }
        }
        let nodes = r.count()?;
        if nodes != self.graph.nodes.len() {
            return Err(CheckpointError::Mismatch(format!("{nodes} operators, now {}", self.graph.nodes.len())));
        }
        let signatures: Vec<u64> = self.graph.signatures().iter().map(|s| signature_hash(s)).collect();
        for (id, signature) in signatures.into_iter().enumerate() {
            if r.u64()? != signature {
                return Err(CheckpointError::Mismatch(format!("operator {id} has another definition")));
            }
            let kind = r.u8()?;
            load_operator(id, kind, &mut self.graph.nodes[id].operator, r)?;
        }
        self.position = Some(position);
        Ok(position)
    }
}

#[cfg(test)]
mod tests;
