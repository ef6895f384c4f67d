//! Pure decoding of the logical replication stream: the streaming
//! replication wrapper ([`decode_replication`]: XLogData and keepalives,
//! [`encode_standby_status`] for the reply) and the `pgoutput` plugin's
//! messages inside XLogData ([`decode_message`], protocol version 1).
//!
//! Reference: PostgreSQL's "Streaming Replication Protocol" and "Logical
//! Replication Message Formats" chapters. Every integer is big-endian; a
//! `String` is NUL-terminated. Decoded messages borrow column values from
//! the input bytes.
//!
//! Traps:
//!
//! * `Begin.final_lsn` and `Commit.commit_lsn` are the *start* of the commit
//!   record; `Commit.end_lsn` is its end. Acknowledging `end_lsn` tells the
//!   server the transaction is done; a later `START_REPLICATION` skips every
//!   transaction whose commit record starts before the start point.
//! * An old tuple is sent only for REPLICA IDENTITY FULL ('O': every
//!   column) or when the replica identity key changed or is toasted ('K':
//!   only the key columns are set, the others are null).
//! * 'u' marks a TOASTed value the update did not change: the new tuple
//!   does not carry it.

use std::fmt;

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01 UTC).
const POSTGRES_EPOCH_UNIX_SECONDS: f64 = 946_684_800.0;

/// A PostgreSQL timestamp (microseconds since 2000-01-01 UTC) as Unix seconds.
pub fn unix_seconds(postgres_micros: i64) -> f64 {
    POSTGRES_EPOCH_UNIX_SECONDS + postgres_micros as f64 / 1e6
}

/// Unix seconds as a PostgreSQL timestamp.
pub fn postgres_micros(unix_seconds: f64) -> i64 {
    ((unix_seconds - POSTGRES_EPOCH_UNIX_SECONDS) * 1e6) as i64
}

/// One message of the replication stream (a CopyData payload).
#[derive(Debug, Clone, PartialEq)]
pub enum ReplicationMessage<'a> {
    /// 'w': WAL data, here one pgoutput message.
    XLogData { start: u64, wal_end: u64, sent_at: i64, data: &'a [u8] },
    /// 'k': the server's keepalive; `reply_requested` asks for a standby
    /// status update right away (or the server ends the stream after
    /// `wal_sender_timeout`).
    Keepalive { wal_end: u64, sent_at: i64, reply_requested: bool },
}

/// A standby status update ('r'): positions up to which WAL was written,
/// flushed and applied by the client, its clock, and whether the server
/// should answer at once. The server moves the slot's `confirmed_flush_lsn`
/// to `flush`.
pub fn encode_standby_status(write: u64, flush: u64, apply: u64, now_micros: i64, reply: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(34);
    out.push(b'r');
    out.extend_from_slice(&write.to_be_bytes());
    out.extend_from_slice(&flush.to_be_bytes());
    out.extend_from_slice(&apply.to_be_bytes());
    out.extend_from_slice(&now_micros.to_be_bytes());
    out.push(u8::from(reply));
    out
}

/// Decodes one CopyData payload of a `START_REPLICATION` stream.
pub fn decode_replication(bytes: &[u8]) -> Result<ReplicationMessage<'_>, DecodeError> {
    let mut r = Reader::new(bytes);
    match r.u8()? {
        b'w' => {
            let start = r.u64()?;
            let wal_end = r.u64()?;
            let sent_at = r.i64()?;
            Ok(ReplicationMessage::XLogData { start, wal_end, sent_at, data: r.rest() })
        }
        b'k' => {
            let wal_end = r.u64()?;
            let sent_at = r.i64()?;
            let reply_requested = r.u8()? != 0;
            r.end()?;
            Ok(ReplicationMessage::Keepalive { wal_end, sent_at, reply_requested })
        }
        tag => Err(DecodeError::UnknownTag { tag, what: "replication message" }),
    }
}

/// A pgoutput message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message<'a> {
    Begin(Begin),
    Commit(Commit),
    /// 'O': the transaction was replicated from another node.
    Origin {
        commit_lsn: u64,
        name: String,
    },
    Relation(Relation),
    /// 'Y': a user type used by a following Relation message.
    Type {
        id: u32,
        namespace: String,
        name: String,
    },
    Insert {
        relation: u32,
        new: Tuple<'a>,
    },
    /// `old` is present for REPLICA IDENTITY FULL, or when the key changed.
    Update {
        relation: u32,
        old: Option<OldTuple<'a>>,
        new: Tuple<'a>,
    },
    Delete {
        relation: u32,
        old: OldTuple<'a>,
    },
    Truncate {
        cascade: bool,
        restart_identity: bool,
        relations: Vec<u32>,
    },
}

/// 'B': a transaction starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Begin {
    /// Where its commit record starts.
    pub final_lsn: u64,
    /// Commit time, microseconds since 2000-01-01 UTC.
    pub committed_at: i64,
    pub xid: u32,
}

/// 'C': the transaction committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    pub flags: u8,
    /// Where its commit record starts.
    pub commit_lsn: u64,
    /// Where its commit record ends: the position to acknowledge.
    pub end_lsn: u64,
    pub committed_at: i64,
}

/// 'R': the shape of a table, sent before its first change in a stream and
/// again after each change of its shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub id: u32,
    /// Empty for `pg_catalog`.
    pub namespace: String,
    pub name: String,
    /// `relreplident`: 'd' default, 'n' nothing, 'f' full, 'i' index.
    pub replica_identity: u8,
    pub columns: Vec<RelationColumn>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Part of the replica identity key.
    pub key: bool,
    pub name: String,
    pub type_id: u32,
    pub type_modifier: i32,
}

/// The old row of an update or delete.
#[derive(Debug, Clone, PartialEq)]
pub enum OldTuple<'a> {
    /// 'K': the replica identity key columns; the others are null.
    Key(Tuple<'a>),
    /// 'O': every column (REPLICA IDENTITY FULL).
    Full(Tuple<'a>),
}

impl<'a> OldTuple<'a> {
    pub fn tuple(&self) -> &Tuple<'a> {
        match self {
            OldTuple::Key(t) | OldTuple::Full(t) => t,
        }
    }
}

/// The columns of a row, in table order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tuple<'a>(pub Vec<Column<'a>>);

/// One column of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column<'a> {
    Null,
    /// 'u': a TOASTed value the update left unchanged; not sent.
    Unchanged,
    /// 't': the value in the type's text output format.
    Text(&'a [u8]),
    /// 'b': the value in the type's binary format (the `binary` option).
    Binary(&'a [u8]),
}

/// Why bytes are not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{what} ends early: {needed} more byte(s) needed at offset {offset}")]
    Truncated { what: &'static str, offset: usize, needed: usize },
    #[error("unknown {what} tag {}", describe_tag(*.tag))]
    UnknownTag { tag: u8, what: &'static str },
    #[error("{extra} unexpected byte(s) after the message")]
    TrailingBytes { extra: usize },
    #[error("a string is not NUL-terminated or not UTF-8")]
    BadString,
    #[error("negative length {0}")]
    NegativeLength(i32),
}

fn describe_tag(tag: u8) -> String {
    if tag.is_ascii_graphic() {
        format!("'{}'", tag as char)
    } else {
        format!("0x{tag:02x}")
    }
}

/// Decodes one pgoutput message (protocol version 1).
pub fn decode_message(bytes: &[u8]) -> Result<Message<'_>, DecodeError> {
    let mut r = Reader::new(bytes);
    let message = match r.u8()? {
        b'B' => Message::Begin(Begin { final_lsn: r.u64()?, committed_at: r.i64()?, xid: r.u32()? }),
        b'C' => {
            Message::Commit(Commit { flags: r.u8()?, commit_lsn: r.u64()?, end_lsn: r.u64()?, committed_at: r.i64()? })
        }
        b'O' => Message::Origin { commit_lsn: r.u64()?, name: r.string()? },
        b'R' => Message::Relation(relation(&mut r)?),
        b'Y' => Message::Type { id: r.u32()?, namespace: r.string()?, name: r.string()? },
        b'I' => {
            let relation = r.u32()?;
            r.expect(b'N', "insert tuple")?;
            Message::Insert { relation, new: tuple(&mut r)? }
        }
        b'U' => update(&mut r)?,
        b'D' => {
            let relation = r.u32()?;
            let old = match r.u8()? {
                b'K' => OldTuple::Key(tuple(&mut r)?),
                b'O' => OldTuple::Full(tuple(&mut r)?),
                tag => return Err(DecodeError::UnknownTag { tag, what: "delete tuple" }),
            };
            Message::Delete { relation, old }
        }
        b'T' => {
            let count = r.u32()?;
            let options = r.u8()?;
            let relations = (0..count).map(|_| r.u32()).collect::<Result<_, _>>()?;
            Message::Truncate { cascade: options & 1 != 0, restart_identity: options & 2 != 0, relations }
        }
        tag => return Err(DecodeError::UnknownTag { tag, what: "pgoutput message" }),
    };
    r.end()?;
    Ok(message)
}

fn relation(r: &mut Reader<'_>) -> Result<Relation, DecodeError> {
    let id = r.u32()?;
    let namespace = r.string()?;
    let name = r.string()?;
    let replica_identity = r.u8()?;
    let count = r.u16()?;
    let mut columns = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        columns.push(RelationColumn {
            key: r.u8()? & 1 != 0,
            name: r.string()?,
            type_id: r.u32()?,
            type_modifier: r.i32()?,
        });
    }
    Ok(Relation { id, namespace, name, replica_identity, columns })
}

fn update<'a>(r: &mut Reader<'a>) -> Result<Message<'a>, DecodeError> {
    let relation = r.u32()?;
    let old = match r.u8()? {
        b'K' => Some(OldTuple::Key(tuple(r)?)),
        b'O' => Some(OldTuple::Full(tuple(r)?)),
        b'N' => None,
        tag => return Err(DecodeError::UnknownTag { tag, what: "update tuple" }),
    };
    if old.is_some() {
        r.expect(b'N', "update new tuple")?;
    }
    Ok(Message::Update { relation, old, new: tuple(r)? })
}

fn tuple<'a>(r: &mut Reader<'a>) -> Result<Tuple<'a>, DecodeError> {
    let count = r.u16()?;
    let mut columns = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        columns.push(match r.u8()? {
            b'n' => Column::Null,
            b'u' => Column::Unchanged,
            b't' => Column::Text(r.sized()?),
            b'b' => Column::Binary(r.sized()?),
            tag => return Err(DecodeError::UnknownTag { tag, what: "tuple column" }),
        });
    }
    Ok(Tuple(columns))
}

/// A cursor over a message's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, offset: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let available = self.bytes.len() - self.offset;
        if available < n {
            return Err(DecodeError::Truncated { what: "message", offset: self.offset, needed: n - available });
        }
        let out = &self.bytes[self.offset..self.offset + n];
        self.offset += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let rest = &self.bytes[self.offset..];
        let end = rest.iter().position(|&b| b == 0).ok_or(DecodeError::BadString)?;
        let s = std::str::from_utf8(&rest[..end]).map_err(|_| DecodeError::BadString)?;
        self.offset += end + 1;
        Ok(s.to_string())
    }

    /// An Int32 length, then that many bytes.
    fn sized(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.i32()?;
        let len = usize::try_from(len).map_err(|_| DecodeError::NegativeLength(len))?;
        self.take(len)
    }

    fn expect(&mut self, tag: u8, what: &'static str) -> Result<(), DecodeError> {
        match self.u8()? {
            t if t == tag => Ok(()),
            t => Err(DecodeError::UnknownTag { tag: t, what }),
        }
    }

    fn rest(&mut self) -> &'a [u8] {
        let out = &self.bytes[self.offset..];
        self.offset = self.bytes.len();
        out
    }

    fn end(&self) -> Result<(), DecodeError> {
        match self.bytes.len() - self.offset {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes { extra }),
        }
    }
}

impl fmt::Display for Column<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Column::Null => f.write_str("null"),
            Column::Unchanged => f.write_str("unchanged"),
            Column::Text(t) => write!(f, "{:?}", String::from_utf8_lossy(t)),
            Column::Binary(b) => write!(f, "<{} bytes>", b.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds message bytes the way the server writes them.
    #[derive(Default)]
    struct Bytes(Vec<u8>);

    impl Bytes {
        fn tag(mut self, t: u8) -> Self {
            self.0.push(t);
            self
        }
        fn u16(mut self, v: u16) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn u32(mut self, v: u32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn i32(mut self, v: i32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn u64(mut self, v: u64) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn string(mut self, s: &str) -> Self {
            self.0.extend_from_slice(s.as_bytes());
            self.0.push(0);
            self
        }
        fn text(self, s: &str) -> Self {
            let mut b = self.tag(b't').i32(s.len() as i32);
            b.0.extend_from_slice(s.as_bytes());
            b
        }
    }

    fn b() -> Bytes {
        Bytes::default()
    }

    #[test]
    fn decodes_every_message_kind() {
        let cases: Vec<(&str, Vec<u8>, Message<'static>)> = vec![
            (
                "begin",
                b().tag(b'B').u64(0x16B_3748).u64(1_000_000).u32(731).0,
                Message::Begin(Begin { final_lsn: 0x16B_3748, committed_at: 1_000_000, xid: 731 }),
            ),
            (
                "commit",
                b().tag(b'C').tag(0).u64(0x100).u64(0x130).u64(5).0,
                Message::Commit(Commit { flags: 0, commit_lsn: 0x100, end_lsn: 0x130, committed_at: 5 }),
            ),
            (
                "origin",
                b().tag(b'O').u64(42).string("node_a").0,
                Message::Origin { commit_lsn: 42, name: "node_a".into() },
            ),
            (
                "relation",
                b().tag(b'R')
                    .u32(16384)
                    .string("public")
                    .string("users")
                    .tag(b'f')
                    .u16(2)
                    .tag(1)
                    .string("id")
                    .u32(20)
                    .i32(-1)
                    .tag(0)
                    .string("name")
                    .u32(1043)
                    .i32(68)
                    .0,
                Message::Relation(Relation {
                    id: 16384,
                    namespace: "public".into(),
                    name: "users".into(),
                    replica_identity: b'f',
                    columns: vec![
                        RelationColumn { key: true, name: "id".into(), type_id: 20, type_modifier: -1 },
                        RelationColumn { key: false, name: "name".into(), type_id: 1043, type_modifier: 68 },
                    ],
                }),
            ),
            (
                "type",
                b().tag(b'Y').u32(90000).string("public").string("mood").0,
                Message::Type { id: 90000, namespace: "public".into(), name: "mood".into() },
            ),
            (
                "insert with a null",
                b().tag(b'I').u32(16384).tag(b'N').u16(3).text("1").tag(b'n').text("").0,
                Message::Insert {
                    relation: 16384,
                    new: Tuple(vec![Column::Text(b"1"), Column::Null, Column::Text(b"")]),
                },
            ),
            (
                "update without old tuple, TOAST unchanged",
                b().tag(b'U').u32(7).tag(b'N').u16(2).text("1").tag(b'u').0,
                Message::Update { relation: 7, old: None, new: Tuple(vec![Column::Text(b"1"), Column::Unchanged]) },
            ),
            (
                "update with old key",
                b().tag(b'U').u32(7).tag(b'K').u16(2).text("1").tag(b'n').tag(b'N').u16(2).text("2").text("x").0,
                Message::Update {
                    relation: 7,
                    old: Some(OldTuple::Key(Tuple(vec![Column::Text(b"1"), Column::Null]))),
                    new: Tuple(vec![Column::Text(b"2"), Column::Text(b"x")]),
                },
            ),
            (
                "update with old full row",
                b().tag(b'U').u32(7).tag(b'O').u16(2).text("1").text("a").tag(b'N').u16(2).text("1").tag(b'u').0,
                Message::Update {
                    relation: 7,
                    old: Some(OldTuple::Full(Tuple(vec![Column::Text(b"1"), Column::Text(b"a")]))),
                    new: Tuple(vec![Column::Text(b"1"), Column::Unchanged]),
                },
            ),
            (
                "delete by key",
                b().tag(b'D').u32(7).tag(b'K').u16(2).text("1").tag(b'n').0,
                Message::Delete { relation: 7, old: OldTuple::Key(Tuple(vec![Column::Text(b"1"), Column::Null])) },
            ),
            (
                "delete full row, binary column",
                b().tag(b'D').u32(7).tag(b'O').u16(1).tag(b'b').i32(2).u16(0xBEEF).0,
                Message::Delete { relation: 7, old: OldTuple::Full(Tuple(vec![Column::Binary(&[0xBE, 0xEF])])) },
            ),
            (
                "truncate",
                b().tag(b'T').u32(2).tag(3).u32(7).u32(8).0,
                Message::Truncate { cascade: true, restart_identity: true, relations: vec![7, 8] },
            ),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(decode_message(&bytes).as_ref(), Ok(&want), "{name}");
        }
    }

    #[test]
    fn refuses_malformed_messages() {
        let cases: Vec<(&str, Vec<u8>, DecodeError)> = vec![
            ("empty", vec![], DecodeError::Truncated { what: "message", offset: 0, needed: 1 }),
            ("unknown tag", vec![b'Z'], DecodeError::UnknownTag { tag: b'Z', what: "pgoutput message" }),
            ("short begin", b().tag(b'B').u32(1).0, DecodeError::Truncated { what: "message", offset: 1, needed: 4 }),
            ("trailing bytes", b().tag(b'T').u32(0).tag(0).tag(9).0, DecodeError::TrailingBytes { extra: 1 }),
            ("unterminated string", b().tag(b'O').u64(1).tag(b'x').0, DecodeError::BadString),
            (
                "bad column kind",
                b().tag(b'I').u32(1).tag(b'N').u16(1).tag(b'q').0,
                DecodeError::UnknownTag { tag: b'q', what: "tuple column" },
            ),
            (
                "insert without N",
                b().tag(b'I').u32(1).tag(b'K').0,
                DecodeError::UnknownTag { tag: b'K', what: "insert tuple" },
            ),
            (
                "negative length",
                b().tag(b'I').u32(1).tag(b'N').u16(1).tag(b't').i32(-2).0,
                DecodeError::NegativeLength(-2),
            ),
            (
                "value longer than the message",
                b().tag(b'I').u32(1).tag(b'N').u16(1).tag(b't').i32(10).tag(b'a').0,
                DecodeError::Truncated { what: "message", offset: 13, needed: 9 },
            ),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(decode_message(&bytes), Err(want), "{name}");
        }
    }

    #[test]
    fn decodes_the_replication_wrapper() {
        let xlog = b().tag(b'w').u64(10).u64(20).u64(30).tag(b'B').0;
        assert_eq!(
            decode_replication(&xlog),
            Ok(ReplicationMessage::XLogData { start: 10, wal_end: 20, sent_at: 30, data: b"B" })
        );
        let keepalive = b().tag(b'k').u64(99).u64(7).tag(1).0;
        assert_eq!(
            decode_replication(&keepalive),
            Ok(ReplicationMessage::Keepalive { wal_end: 99, sent_at: 7, reply_requested: true })
        );
        assert_eq!(decode_replication(b"x"), Err(DecodeError::UnknownTag { tag: b'x', what: "replication message" }));
    }

    #[test]
    fn standby_status_layout() {
        let bytes = encode_standby_status(1, 2, 3, 4, true);
        let want = b().tag(b'r').u64(1).u64(2).u64(3).u64(4).tag(1).0;
        assert_eq!(bytes, want);
    }

    #[test]
    fn timestamps_convert_between_epochs() {
        assert_eq!(unix_seconds(0), 946_684_800.0);
        assert_eq!(unix_seconds(1_500_000), 946_684_801.5);
        assert_eq!(postgres_micros(946_684_801.5), 1_500_000);
    }
}
