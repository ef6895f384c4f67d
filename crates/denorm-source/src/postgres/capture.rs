//! Logical replication capture for PostgreSQL: [`PgCapture`].
//!
//! ```text
//!  open():      requirements (wal_level, REPLICATION, free slot and WAL sender),
//!               tables vs catalog, REPLICA IDENTITY, publication = captured tables
//!  snapshot():  replication conn: CREATE_REPLICATION_SLOT s LOGICAL pgoutput EXPORT_SNAPSHOT
//!                                 → consistent point C, snapshot name N
//!               ordinary conn:    BEGIN REPEATABLE READ; SET TRANSACTION SNAPSHOT N;
//!                                 COPY (SELECT read columns FROM t) TO STDOUT …; COMMIT
//!               → Snapshot { position: C }: every transaction committed before C is
//!                 in it, every later one comes from the slot
//!  poll():      replication conn: START_REPLICATION SLOT s LOGICAL C (proto_version '1', …)
//!               Begin … Insert/Update/Delete/Truncate … Commit → one ChangeBatch
//!               (position = the commit record's end LSN; the transactions received
//!               already after it join the batch, see PgCapture::poll)
//!               keepalive (WAL end W, no transaction open) → Progress(W)
//!  release(p):  standby status update, flush = p → the slot's confirmed_flush_lsn
//!  resume(p):   after a dropped connection: START_REPLICATION from max(p, confirmed_flush)
//! ```
//!
//! # Replica identity: why FULL
//!
//! A view retracts a changed row by its old value. denorm keeps no copy of
//! the source rows outside the operators' state (a per-table row store keyed
//! by primary key would double the memory of every captured table), so the
//! old row must come from the WAL. PostgreSQL logs the whole old row only
//! with `REPLICA IDENTITY FULL`; with `DEFAULT` it logs the primary key, and
//! only when the key changed. So [`PgCapture::open`] accepts a table when
//!
//! * its identity is `FULL`, or
//! * its identity is `DEFAULT` (with a primary key) or `USING INDEX`, and
//!   every column the views read is in that key: an update that keeps the
//!   key then changes none of the read columns, and one that changes it
//!   carries the old key;
//!
//! and otherwise fails with [`SourceError::ReplicaIdentity`], naming the
//! table, the read columns the identity lacks and the `ALTER TABLE …
//! REPLICA IDENTITY FULL` fix. FULL is also what lets an update that leaves
//! a TOASTed column unchanged ('u' in the new tuple) be completed: the old
//! tuple holds the value, detoasted. The check runs before the table joins
//! the publication because PostgreSQL refuses UPDATE and DELETE on a
//! published table without a replica identity.
//!
//! # Exactly once
//!
//! A batch's position is the end of its commit record. The server skips,
//! on `START_REPLICATION` at L, every transaction whose commit record starts
//! before L, so resuming at the last published position neither repeats
//! nor loses a transaction. The slot's `confirmed_flush_lsn` moves only by
//! [`PgCapture::release`], with one exception: while every batch handed out
//! is released and no transaction is in flight, a keepalive's WAL end is
//! acknowledged too (nothing before it concerns the captured tables), so an
//! idle capture does not hold back the server's WAL.
//!
//! The capture does not rely on the server alone for this: a transaction
//! whose commit ends at or before the last position handed out is dropped
//! when it arrives. The slot's `confirmed_flush_lsn` is made durable only
//! at checkpoints, so after a crash of the server (`pg_ctl stop -m
//! immediate`) it can lie before what denorm published.
//!
//! # Server restart
//!
//! A walsender shutting down with its server ends the stream with
//! CommandComplete (no CopyDone): [`WireError::Ended`], transient, like a
//! lost connection. [`PgCapture::resume`] reconnects both the replication
//! and the ordinary connection and streams on from the slot, which
//! survives the restart.
//!
//! # Progress past WAL with nothing captured (read-your-writes)
//!
//! Commits of captured tables are not the only WAL: other tables, other
//! databases, vacuum and checkpoints advance the server's position too, so
//! an LSN an application reads after its commit (`pg_current_wal_lsn()`)
//! usually lies past the last captured commit. [`Poll::Progress`] reports
//! how far the stream is complete, from what the walsender
//! (`src/backend/replication/walsender.c`) guarantees:
//!
//! * it decodes WAL in order and sends a transaction whole while decoding
//!   its commit record; only then does its `sentPtr` move to that record's
//!   end (`XLogSendLogical`);
//! * a keepalive carries `sentPtr` (`WalSndKeepalive`; the one exception,
//!   a skipped empty transaction under synchronous replication, carries
//!   that commit's end, sent while decoding it), on the same ordered
//!   stream as the data;
//! * it sends one whenever it runs out of flushed WAL while the standby's
//!   reported write and flush positions are behind `sentPtr`
//!   (`WalSndWaitForWal`), and at once in reply to a status update with
//!   reply-requested set (`ProcessStandbyReplyMessage`).
//!
//! So a keepalive with WAL end W, received while no transaction is open on
//! our side, says that every transaction whose commit ends at or before W
//! was sent before it: each was handed out already, or concerns no
//! captured table. The capture then hands out `Progress(W)`; a caller that
//! applied everything handed out may publish its state as of W. A
//! keepalive inside a transaction (the walsender pings while it streams a
//! large one) is not used. [`PgCapture::poll_wanting`] asks for such a
//! keepalive at once (a status update with reply-requested, at most every
//! [`PROGRESS_REQUEST_INTERVAL`]) while a reader waits for a position the
//! capture has not handed out; otherwise keepalives come on their own,
//! each time the walsender catches up with new WAL.
//!
//! The walsender decodes only flushed WAL: a position from
//! `pg_current_wal_lsn()` (the write position) is flushed by the WAL
//! writer within `wal_writer_delay` at the latest. With `synchronous_commit
//! = off` a commit returns before its record is even written, so
//! `pg_current_wal_lsn()` may lie before it: such an application reads
//! `pg_current_wal_insert_lsn()` instead.
//!
//! # Traps
//!
//! * **Keepalives.** The server ends a stream that sends no status for
//!   `wal_sender_timeout` (60 s by default), and asks for one at once with
//!   the reply-requested flag. [`PgCapture::poll`] answers those and sends
//!   a status at least every [`STATUS_INTERVAL`]: call it regularly.
//! * **Schema changes arrive late.** A Relation message announces a table's
//!   new shape with the table's next change, not at the `ALTER TABLE`; the
//!   poll that meets it returns [`Poll::SchemaChanged`] without consuming
//!   the transaction, and so does every later poll.
//! * **Whole transactions in memory.** A transaction is gathered until its
//!   Commit (protocol version 1 does not stream transactions in progress).
//! * **A slot retains WAL.** A slot nobody reads keeps every WAL segment
//!   since its `restart_lsn`; watch [`PgCapture::lag`] and drop unused slots
//!   with [`uninstall`].
//! * **Restart.** [`PgCapture::snapshot`] drops the slot if it exists and
//!   creates it again: a restart costs a full read of the captured tables,
//!   and the WAL the old slot retained is freed. [`PgCapture::follow_reading`]
//!   (`capture/partial.rs`) reads only some tables, at a temporary slot's
//!   point, and keeps the slot. [`PgCapture::resume`]
//!   continues a stream without a snapshot, for a caller that kept its state
//!   (a dropped connection).
//! * **The exported snapshot lives** only while the replication connection
//!   that created it runs no other command: the tables are read before
//!   `START_REPLICATION` is sent on it.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use denorm_types::{Catalog, Datum, Position, Row, RowPacker, TableSchema, Value};
use postgres::error::SqlState;
use postgres::{Client, IsolationLevel};

use super::batch::{Table, TransactionBuilder};
use super::pgoutput::{decode_message, decode_replication, encode_standby_status, postgres_micros};
use super::pgoutput::{Message, ReplicationMessage};
use super::wire::{self, ReplicationConnection, WireError};
use super::{connect_config, describe_server, format_lsn, parse_lsn, parse_url, read_tables, PgTable, SCHEMA};
use super::{CaptureSpec, ChangeBatch, Snapshot, SnapshotProgress};
use crate::SourceError;

mod partial;
pub use partial::PartialRead;

/// A standby status update goes out at least this often while polling.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(10);
/// [`PgCapture::release`] sends at most one status update this often; a
/// release within it is sent by the next poll.
const RELEASE_STATUS_INTERVAL: Duration = Duration::from_millis(10);
/// While a reader waits for a position not handed out yet,
/// [`PgCapture::poll_wanting`] asks the server for a keepalive at most this
/// often.
pub const PROGRESS_REQUEST_INTERVAL: Duration = Duration::from_millis(10);
/// Transactions received already are handed out as one batch of up to
/// about this many changes (see [`PgCapture::poll`]).
pub const MERGE_CHANGES: usize = 50_000;
/// How often [`PgCapture::poll_wanting`] looks whether a reader waits.
const DEMAND_CHECK: Duration = Duration::from_millis(5);
/// Rows between two snapshot progress reports.
const PROGRESS_EVERY: u64 = 10_000;

/// The names of the publication and the replication slot denorm owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub publication: String,
    pub slot: String,
}

impl Default for Names {
    fn default() -> Self {
        Names { publication: "denorm".into(), slot: "denorm".into() }
    }
}

impl Names {
    /// Slot names may hold only lower-case letters, digits and underscores;
    /// the publication follows the same rule so that it needs no quoting.
    fn validate(&self) -> Result<(), SourceError> {
        for name in [&self.publication, &self.slot] {
            let valid = !name.is_empty()
                && name.len() <= 63
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid {
                return Err(SourceError::PostgresName { name: name.clone() });
            }
        }
        Ok(())
    }
}

/// What [`PgCapture::poll`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Poll {
    /// No complete transaction before the timeout.
    Idle,
    /// Committed transactions, whole and in order (usually one; several
    /// when they were received already).
    Changes(ChangeBatch),
    /// No captured transaction, but the server has sent everything up to
    /// this position (a keepalive or a transaction of no captured table):
    /// every transaction that commits at or before it was handed out
    /// already. A caller that applied them may publish its state as of
    /// this position; see the module documentation.
    Progress(Position),
    /// The named captured tables changed shape (or their replica identity
    /// no longer supplies old rows). Nothing of the transaction was
    /// consumed: re-read the catalog, re-plan, open again and snapshot.
    SchemaChanged { tables: Vec<String> },
}

/// How far the slot is behind the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// `pg_current_wal_lsn()`.
    pub server_position: Position,
    /// The slot's `confirmed_flush_lsn`: what denorm released.
    pub confirmed_flush: Position,
    /// `server_position - confirmed_flush`.
    pub lag_bytes: u64,
    /// WAL the slot keeps on the server's disk: `server_position -
    /// restart_lsn`. Warn when it passes a threshold.
    pub retained_bytes: u64,
}

/// What [`uninstall`] dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uninstalled {
    pub slot: bool,
    pub publication: bool,
}

/// The replication stream once the slot exists.
#[derive(Debug)]
struct Stream {
    conn: ReplicationConnection,
    /// Where `START_REPLICATION` starts; `None` once it was sent.
    start_at: Option<Position>,
    /// The largest WAL position the server reported.
    received: u64,
    /// WAL end of a keepalive or skipped transaction met while nothing was
    /// in flight: acknowledged once everything handed out is released.
    idle_end: u64,
    transaction: Option<TransactionBuilder>,
    /// The open transaction's commit record start (`Begin.final_lsn`).
    final_lsn: u64,
    last_status: Instant,
    status_pending: bool,
    /// When a keepalive was last asked for (reply-requested).
    last_request: Option<Instant>,
}

/// Change capture of one PostgreSQL database: see the module documentation.
pub struct PgCapture {
    config: postgres::Config,
    server: String,
    names: Names,
    client: Client,
    /// Captured tables, sorted by name.
    tables: Vec<Table>,
    /// Relation OID → captured table, from Relation messages (`None`: a
    /// published table that is not captured).
    relations: HashMap<u32, Option<usize>>,
    stream: Option<Stream>,
    /// The last position handed out (snapshot or batch).
    position: Position,
    /// The last position the caller released.
    released: Position,
    schema_changed: Option<Vec<String>>,
    /// A complete batch to hand out at the next poll (a TRUNCATE met while
    /// other transactions were gathered).
    held: Option<ChangeBatch>,
    /// While [`follow_reading`](Self::follow_reading) follows the stream up
    /// to the point its tables were read at: what to drop before it.
    cut: Option<partial::Cut>,
}

impl PgCapture {
    /// Connects to `url`, checks the server's requirements and the captured
    /// tables against `catalog` (what the views were planned against: a
    /// difference is [`SourceError::SchemaChanged`]) and their replica
    /// identity, and makes the publication hold exactly the captured
    /// tables (creating it if needed; running it again changes nothing).
    pub fn open(url: &str, catalog: &Catalog, spec: &CaptureSpec, names: &Names) -> Result<Self, SourceError> {
        names.validate()?;
        let config = parse_url(url)?;
        let server = describe_server(&config);
        let mut client = connect_config(&config)?;
        check_server(&mut client, &server, names)?;
        let planned = plan(catalog, spec)?;
        let lower: Vec<String> = planned.keys().cloned().collect();
        let actual = read_tables(&mut client, Some(&lower))?;
        let tables = check_tables(&planned, &actual)?;
        ensure_publication(&mut client, &server, &names.publication, &tables)?;
        Ok(PgCapture {
            config,
            server,
            names: names.clone(),
            client,
            tables,
            relations: HashMap::new(),
            stream: None,
            position: Position(0),
            released: Position(0),
            schema_changed: None,
            held: None,
            cut: None,
        })
    }

    /// The rows of captured `table` whose `key` columns hold the values,
    /// read in one REPEATABLE READ snapshot on the ordinary connection,
    /// with `pg_current_wal_insert_lsn()` read inside it (see
    /// [`ChangeSource::read_key`](crate::ChangeSource::read_key)).
    pub fn read_key(&mut self, table: &str, key: &[(String, Value)]) -> Result<crate::KeyRead, SourceError> {
        let captured = self
            .tables
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(table))
            .cloned()
            .ok_or_else(|| SourceError::UnknownTable { table: table.to_string() })?;
        let server = self.server.clone();
        let mut tx = self
            .client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(pg_error(&server, "starting to read a row"))?;
        let lsn: String = tx
            .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
            .map_err(pg_error(&server, "reading the WAL position"))?
            .get(0);
        let position = parse_lsn(&lsn).ok_or_else(|| SourceError::PostgresReplication {
            server: server.clone(),
            what: format!("reading the WAL position (the server answered {lsn:?})"),
            source: WireError::Closed,
        })?;
        let rows = copy_table(&mut tx, &server, &captured, &key_filter(key), &mut |_| {})?;
        tx.commit().map_err(pg_error(&server, "ending the read of a row"))?;
        Ok(crate::KeyRead { position, rows })
    }

    /// (Re)creates the slot with an exported snapshot and reads every
    /// captured table inside it. The position is the slot's consistent
    /// point; [`poll`](Self::poll) streams from there.
    pub fn snapshot(&mut self, progress: &mut dyn FnMut(SnapshotProgress<'_>)) -> Result<Snapshot, SourceError> {
        self.stream = None;
        self.held = None;
        self.relations.clear();
        self.schema_changed = None;
        drop_slot(&mut self.client, &self.server, &self.names.slot)?;
        let mut conn = self.replication_connection()?;
        let create = format!("CREATE_REPLICATION_SLOT {} LOGICAL pgoutput EXPORT_SNAPSHOT", self.names.slot);
        let rows = conn.simple_query(&create).map_err(self.wire_error("creating the replication slot"))?;
        let (position, snapshot_name) = rows
            .first()
            .and_then(|row| Some((parse_lsn(row.get(1)?.as_deref()?)?, row.get(2)?.clone()?)))
            .ok_or_else(|| self.protocol_error("CREATE_REPLICATION_SLOT returned no consistent point"))?;
        let all: Vec<usize> = (0..self.tables.len()).collect();
        let tables = self.read_snapshot(&snapshot_name, &all, progress)?;
        self.position = position;
        self.released = Position(0);
        self.stream = Some(Stream::new(conn, position));
        Ok(Snapshot { position, tables })
    }

    /// Continues streaming from the existing slot without a snapshot, for a
    /// caller whose state reflects `from` (the last position it published;
    /// `Position(0)`: the slot's confirmed flush). Fails with
    /// [`SourceError::SlotMissing`] when the slot is gone and with the
    /// transient [`SourceError::SlotInUse`] when another connection holds it.
    pub fn resume(&mut self, from: Position) -> Result<(), SourceError> {
        self.prepare_stream(from)?;
        self.start_streaming()
    }

    /// [`resume`](Self::resume) up to `START_REPLICATION`, which the next
    /// [`poll`](Self::poll) sends.
    fn prepare_stream(&mut self, from: Position) -> Result<(), SourceError> {
        self.stream = None;
        self.held = None;
        self.relations.clear();
        self.schema_changed = None;
        if self.client.is_closed() {
            // The server restarted (or the network dropped): the ordinary
            // session is gone too.
            self.client = connect_config(&self.config)?;
        }
        let confirmed = self.slot_position()?;
        let start = from.max(confirmed);
        let conn = self.replication_connection()?;
        self.position = start;
        self.released = start;
        self.stream = Some(Stream::new(conn, start));
        Ok(())
    }

    /// Names this server and slot for a state directory: the cluster's
    /// `system_identifier` (`IDENTIFY_SYSTEM`) and the slot's name.
    pub fn identity(&mut self) -> Result<String, SourceError> {
        let mut conn = self.replication_connection()?;
        let rows = conn.simple_query("IDENTIFY_SYSTEM").map_err(self.wire_error("identifying the server"))?;
        let system = rows
            .first()
            .and_then(|row| row.first()?.clone())
            .ok_or_else(|| self.protocol_error("IDENTIFY_SYSTEM returned no system identifier"))?;
        Ok(format!("postgres system {system} slot {}", self.names.slot))
    }

    /// Continues streaming from the kept slot after `at` without a
    /// snapshot (see [`resume`](Self::resume)), for a caller that kept the
    /// captured tables as of `at` durably. `Ok(Some(reason))` when the slot
    /// is gone: snapshot then. The slot is acknowledged only up to what the
    /// caller releases, so it still holds every change above `at`.
    /// `START_REPLICATION` waits for the first [`poll`](Self::poll), so
    /// the caller may take its time loading its state (no keepalive is
    /// due before).
    pub fn follow_from(&mut self, at: Position) -> Result<Option<String>, SourceError> {
        match self.prepare_stream(at) {
            Ok(()) => Ok(None),
            Err(SourceError::SlotMissing { slot }) => {
                Ok(Some(format!("the replication slot {slot} is gone (dropped by hand, or never created)")))
            }
            Err(e) => Err(e),
        }
    }

    /// Waits up to `timeout` for the next committed transaction, or for
    /// [`Poll::Progress`]. Answers the server's keepalives meanwhile; call
    /// it at least every few seconds.
    ///
    /// The transactions that follow the first one and are received already
    /// (complete in the read buffer: no waiting) join its batch, whole and
    /// in commit order, up to about [`MERGE_CHANGES`] changes: a consumer
    /// that fell behind catches up publishing once per buffer, not once per
    /// transaction. A TRUNCATE, a schema change and a keepalive end the
    /// batch (they are reported by the next poll).
    pub fn poll(&mut self, timeout: Duration) -> Result<Poll, SourceError> {
        self.poll_inner(timeout, None)
    }

    /// [`poll`](Self::poll), asking the server for a keepalive (at most
    /// every [`PROGRESS_REQUEST_INTERVAL`]) while `wanted` returns a
    /// position past the last one handed out: a reader waits for it
    /// (read-your-writes), and the keepalive's WAL end is the prompt
    /// [`Poll::Progress`] answer. `wanted` is looked at every few
    /// milliseconds.
    pub fn poll_wanting(
        &mut self,
        timeout: Duration,
        wanted: &dyn Fn() -> Option<Position>,
    ) -> Result<Poll, SourceError> {
        self.poll_inner(timeout, Some(wanted))
    }

    fn poll_inner(
        &mut self,
        timeout: Duration,
        wanted: Option<&dyn Fn() -> Option<Position>>,
    ) -> Result<Poll, SourceError> {
        if let Some(batch) = self.held.take() {
            return Ok(self.hand_out(batch));
        }
        if let Some(tables) = &self.schema_changed {
            return Ok(Poll::SchemaChanged { tables: tables.clone() });
        }
        self.start_streaming()?;
        // Progress met while a batch was being gathered.
        let stream = self.stream.as_ref().expect("streaming");
        if stream.transaction.is_none() && stream.idle_end > self.position.0 {
            self.position = Position(stream.idle_end);
            return Ok(Poll::Progress(self.position));
        }
        let deadline = Instant::now() + timeout;
        // Transactions already received are handed out together.
        let mut pending: Option<ChangeBatch> = None;
        loop {
            self.send_status_if_due()?;
            if let Some(wanted) = wanted {
                self.request_progress_if_wanted(wanted)?;
            }
            let wake = {
                let stream = self.stream.as_ref().expect("streaming");
                let wake = deadline.min(stream.last_status + STATUS_INTERVAL);
                if pending.is_some() {
                    Instant::now() // only what is buffered already
                } else if wanted.is_some() {
                    wake.min(Instant::now() + DEMAND_CHECK)
                } else {
                    wake
                }
            };
            let stream = self.stream.as_mut().expect("streaming");
            let data = stream.conn.recv_copy_data(wake).map_err(wire_error(&self.server, &self.names, "streaming"))?;
            let Some(data) = data else {
                if let Some(batch) = pending {
                    return Ok(self.hand_out(batch));
                }
                if Instant::now() >= deadline {
                    return Ok(Poll::Idle);
                }
                continue;
            };
            let message = decode_replication(&data)
                .map_err(|source| SourceError::PostgresStream { what: "the replication stream".into(), source })?;
            match message {
                ReplicationMessage::Keepalive { wal_end, reply_requested, .. } => {
                    stream.received = stream.received.max(wal_end);
                    let idle = stream.transaction.is_none();
                    if idle {
                        stream.idle_end = stream.idle_end.max(wal_end);
                    }
                    if reply_requested {
                        self.send_status(false)?;
                    }
                    if let Some(batch) = pending {
                        // The progress is reported by the next poll.
                        return Ok(self.hand_out(batch));
                    }
                    if idle && wal_end > self.position.0 {
                        self.position = Position(wal_end);
                        return Ok(Poll::Progress(self.position));
                    }
                }
                ReplicationMessage::XLogData { start, wal_end, data, .. } => {
                    stream.received = stream.received.max(wal_end);
                    match self.apply(start, data)? {
                        None => {}
                        Some(Poll::Changes(batch)) => match pending.as_mut() {
                            Some(_) if !batch.truncated.is_empty() => {
                                self.held = Some(batch);
                                return Ok(self.hand_out(pending.take().expect("pending")));
                            }
                            Some(gathered) => {
                                gathered.absorb(batch);
                                if gathered.changes() >= MERGE_CHANGES {
                                    return Ok(self.hand_out(pending.take().expect("pending")));
                                }
                            }
                            None if !batch.truncated.is_empty() => return Ok(self.hand_out(batch)),
                            None => pending = Some(batch),
                        },
                        // An empty transaction: reported as progress, by the
                        // next poll when a batch is pending.
                        Some(Poll::Progress(_)) if pending.is_some() => {}
                        Some(Poll::Progress(end)) => {
                            self.position = end;
                            return Ok(Poll::Progress(end));
                        }
                        // The schema change is reported by the next poll.
                        Some(_) if pending.is_some() => return Ok(self.hand_out(pending.take().expect("pending"))),
                        Some(poll) => return Ok(poll),
                    }
                }
            }
        }
    }

    /// Hands out a batch: its position is the last handed out.
    fn hand_out(&mut self, batch: ChangeBatch) -> Poll {
        self.position = batch.position;
        Poll::Changes(batch)
    }

    /// Asks the server for a keepalive when a reader waits for a position
    /// past the one handed out and none was asked for lately.
    fn request_progress_if_wanted(&mut self, wanted: &dyn Fn() -> Option<Position>) -> Result<(), SourceError> {
        let stream = self.stream.as_ref().expect("streaming");
        let due = stream.last_request.is_none_or(|at| at.elapsed() >= PROGRESS_REQUEST_INTERVAL);
        if due && wanted().is_some_and(|w| w > self.position) {
            self.send_status(true)?;
            self.stream.as_mut().expect("streaming").last_request = Some(Instant::now());
        }
        Ok(())
    }

    /// Tells the server that every transaction up to `upto` is applied and
    /// published (clamped to the position handed out): the slot may free
    /// the WAL before it, and a later [`resume`](Self::resume) starts after
    /// it.
    pub fn release(&mut self, upto: Position) -> Result<(), SourceError> {
        self.released = self.released.max(upto.min(self.position));
        let Some(stream) = self.stream.as_mut() else { return Ok(()) };
        if stream.start_at.is_some() {
            return Ok(()); // sent right after START_REPLICATION
        }
        if stream.last_status.elapsed() >= RELEASE_STATUS_INTERVAL {
            self.send_status(false)
        } else {
            stream.status_pending = true;
            Ok(())
        }
    }

    /// The slot's distance from the server's WAL position.
    pub fn lag(&mut self) -> Result<Lag, SourceError> {
        read_lag(&mut self.client, &self.server, &self.names.slot)
    }

    /// The last position handed out by [`snapshot`](Self::snapshot),
    /// [`poll`](Self::poll) or [`resume`](Self::resume).
    pub fn position(&self) -> Position {
        self.position
    }

    /// The walsender's process id, once a replication connection is open.
    pub fn backend_pid(&self) -> Option<i32> {
        self.stream.as_ref().map(|s| s.conn.backend_pid)
    }

    /// `host:port/database`.
    pub fn server(&self) -> &str {
        &self.server
    }

    fn replication_connection(&self) -> Result<ReplicationConnection, SourceError> {
        wire::connect(&self.config).map_err(wire_error(&self.server, &self.names, "connecting for replication"))
    }

    fn wire_error(&self, what: &str) -> impl FnOnce(WireError) -> SourceError {
        wire_error(&self.server, &self.names, what)
    }

    fn protocol_error(&self, what: &str) -> SourceError {
        protocol_error(&self.server, what)
    }

    /// The slot's confirmed flush position; the slot must exist.
    fn slot_position(&mut self) -> Result<Position, SourceError> {
        let row = self
            .client
            .query_opt(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots \
                 WHERE slot_name = $1 AND database = current_database() AND plugin = 'pgoutput'",
                &[&self.names.slot],
            )
            .map_err(pg_error(&self.server, "looking up the replication slot"))?
            .ok_or_else(|| SourceError::SlotMissing { slot: self.names.slot.clone() })?;
        Ok(row.get::<_, Option<String>>(0).as_deref().and_then(parse_lsn).unwrap_or_default())
    }

    /// Sends `START_REPLICATION` unless it was sent already.
    fn start_streaming(&mut self) -> Result<(), SourceError> {
        let stream = self.stream.as_mut().ok_or_else(|| SourceError::PostgresReplication {
            server: self.server.clone(),
            what: "polling".into(),
            source: WireError::Protocol("poll before snapshot or resume (a bug in the caller)".into()),
        })?;
        let Some(start) = stream.start_at else { return Ok(()) };
        let sql = format!(
            "START_REPLICATION SLOT {} LOGICAL {} (proto_version '1', publication_names '{}')",
            self.names.slot,
            format_lsn(start),
            self.names.publication
        );
        stream.conn.start_replication(&sql).map_err(wire_error(&self.server, &self.names, "starting replication"))?;
        stream.start_at = None;
        stream.received = stream.received.max(start.0);
        self.send_status(false)
    }

    /// The flush position to report: what was released, or the idle WAL
    /// end when everything handed out is released.
    fn flush_position(&self) -> u64 {
        let stream = self.stream.as_ref().expect("streaming");
        if stream.transaction.is_none() && self.released >= self.position {
            self.released.0.max(stream.idle_end)
        } else {
            self.released.0
        }
    }

    /// Sends a standby status update; `reply_requested` asks the server
    /// for a keepalive at once.
    fn send_status(&mut self, reply_requested: bool) -> Result<(), SourceError> {
        let flush = self.flush_position();
        let stream = self.stream.as_mut().expect("streaming");
        let now = postgres_micros(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64());
        let status = encode_standby_status(stream.received.max(flush), flush, flush, now, reply_requested);
        stream.conn.send_copy_data(&status).map_err(wire_error(&self.server, &self.names, "acknowledging"))?;
        stream.last_status = Instant::now();
        stream.status_pending = false;
        Ok(())
    }

    fn send_status_if_due(&mut self) -> Result<(), SourceError> {
        let stream = self.stream.as_ref().expect("streaming");
        let since = stream.last_status.elapsed();
        if since >= STATUS_INTERVAL || (stream.status_pending && since >= RELEASE_STATUS_INTERVAL) {
            self.send_status(false)?;
        }
        Ok(())
    }

    /// Applies one pgoutput message; returns what the poll found once a
    /// transaction is complete or a table changed shape.
    fn apply(&mut self, lsn: u64, data: &[u8]) -> Result<Option<Poll>, SourceError> {
        let message = decode_message(data)
            .map_err(|source| SourceError::PostgresStream { what: "a pgoutput message".into(), source })?;
        let stream = self.stream.as_mut().expect("streaming");
        match message {
            Message::Begin(begin) => {
                stream.transaction = Some(TransactionBuilder::new(self.tables.len(), begin.committed_at));
                stream.final_lsn = begin.final_lsn;
            }
            Message::Commit(commit) => {
                let Some(transaction) = stream.transaction.take() else {
                    return Err(protocol_error(&self.server, "Commit without Begin"));
                };
                if commit.end_lsn <= self.position.0 {
                    // Handed out already: a stream restarted before the
                    // position (the slot's confirmed position can go back
                    // after a crash of the server) replays it. Applying it
                    // again would count it twice.
                    tracing::info!(
                        commit_end = %format_lsn(Position(commit.end_lsn)),
                        position = %format_lsn(self.position),
                        "skipped a transaction the server sent again from before the last position handed out"
                    );
                    return Ok(None);
                }
                let mut batch = transaction.finish(&self.tables, commit.end_lsn, stream.received);
                if let Some(cut) = &self.cut {
                    cut.drop_read_tables(&mut batch);
                }
                if batch.tables.is_empty() && batch.truncated.is_empty() && batch.undecodable.is_empty() {
                    // Nothing captured changed: nothing to apply, and
                    // nothing to wait for before acknowledging it; the
                    // stream is complete up to its end.
                    stream.idle_end = stream.idle_end.max(commit.end_lsn);
                    if commit.end_lsn > self.position.0 {
                        return Ok(Some(Poll::Progress(Position(commit.end_lsn))));
                    }
                    return Ok(None);
                }
                return Ok(Some(Poll::Changes(batch)));
            }
            Message::Origin { .. } | Message::Type { .. } => {}
            Message::Relation(relation) => {
                let index = (relation.namespace == SCHEMA || relation.namespace.is_empty() && SCHEMA == "public")
                    .then(|| self.tables.iter().position(|t| t.name == relation.name))
                    .flatten();
                if let Some(i) = index {
                    if !self.tables[i].matches(&relation)
                        && self.cut.as_ref().is_some_and(|c| c.covers(i, stream.final_lsn))
                    {
                        // An earlier shape of a table read at the cut (dropped
                        // and recreated, altered): its changes are in the rows read.
                        self.relations.insert(relation.id, None);
                        return Ok(None);
                    }
                    if !self.tables[i].matches(&relation) {
                        let tables = vec![self.tables[i].name.clone()];
                        stream.transaction = None;
                        self.schema_changed = Some(tables.clone());
                        return Ok(Some(Poll::SchemaChanged { tables }));
                    }
                }
                self.relations.insert(relation.id, index);
            }
            Message::Insert { relation, new } => {
                if let Some(i) = self.change_target(relation)? {
                    transaction(&mut self.stream).insert(&self.tables, i, lsn, &new);
                }
            }
            Message::Update { relation, old, new } => {
                if let Some(i) = self.change_target(relation)? {
                    transaction(&mut self.stream).update(&self.tables, i, lsn, old.as_ref(), &new);
                }
            }
            Message::Delete { relation, old } => {
                if let Some(i) = self.change_target(relation)? {
                    transaction(&mut self.stream).delete(&self.tables, i, lsn, &old);
                }
            }
            Message::Truncate { relations, .. } => {
                for relation in relations {
                    if let Some(i) = self.change_target(relation)? {
                        transaction(&mut self.stream).truncate(i);
                    }
                }
            }
        }
        Ok(None)
    }

    /// The captured table a change of `relation` goes to; `None` for a
    /// table that is not captured. Fails unless a Relation message
    /// announced the relation and a transaction is open.
    fn change_target(&self, relation: u32) -> Result<Option<usize>, SourceError> {
        let Some(&index) = self.relations.get(&relation) else {
            return Err(self.protocol_error("a change of a relation that no Relation message announced"));
        };
        if self.stream.as_ref().is_some_and(|s| s.transaction.is_none()) {
            return Err(self.protocol_error("a change outside a transaction"));
        }
        Ok(index)
    }

    /// Reads the captured tables `which` (indices into `tables`) inside the
    /// exported snapshot.
    fn read_snapshot(
        &mut self,
        snapshot_name: &str,
        which: &[usize],
        progress: &mut dyn FnMut(SnapshotProgress<'_>),
    ) -> Result<Vec<(String, Vec<Row>)>, SourceError> {
        let server = self.server.clone();
        let error = |what: &str| pg_error(&server, what);
        let mut tx = self
            .client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(error("starting the snapshot"))?;
        tx.batch_execute(&format!("SET TRANSACTION SNAPSHOT '{snapshot_name}'"))
            .map_err(error("importing the slot's snapshot"))?;
        let lower: Vec<String> = which.iter().map(|&i| self.tables[i].name.to_ascii_lowercase()).collect();
        let actual = match read_tables(&mut tx, Some(&lower)) {
            Err(SourceError::PostgresUnsupportedType { table, .. }) => {
                return Err(SourceError::SchemaChanged { tables: vec![table] })
            }
            other => other?,
        };
        let reading: Vec<Table> = which.iter().map(|&i| self.tables[i].clone()).collect();
        let changed = changed_tables(&reading, &actual);
        if !changed.is_empty() {
            return Err(SourceError::SchemaChanged { tables: changed });
        }
        let oids: Vec<u32> = actual.iter().map(|t| t.oid).collect();
        let estimated_total: i64 = tx
            .query_one(
                "SELECT coalesce(sum(greatest(reltuples, 0)), 0)::int8 FROM pg_class WHERE oid = ANY($1)",
                &[&oids],
            )
            .map_err(error("estimating table sizes"))?
            .get(0);
        let estimated_total = estimated_total.max(0) as u64;
        let mut rows_read = 0;
        let mut out = Vec::with_capacity(reading.len());
        for table in &reading {
            let before = rows_read;
            let mut report =
                |n: u64| progress(SnapshotProgress { table: &table.name, rows_read: before + n, estimated_total });
            let rows = copy_table(&mut tx, &server, table, "", &mut report)?;
            report(rows.len() as u64);
            rows_read += rows.len() as u64;
            out.push((table.name.clone(), rows));
        }
        tx.commit().map_err(error("ending the snapshot"))?;
        Ok(out)
    }
}

impl std::fmt::Debug for PgCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCapture")
            .field("server", &self.server)
            .field("names", &self.names)
            .field("tables", &self.tables)
            .field("stream", &self.stream)
            .field("position", &self.position)
            .field("released", &self.released)
            .finish_non_exhaustive()
    }
}

impl Stream {
    fn new(conn: ReplicationConnection, start: Position) -> Self {
        Stream {
            conn,
            start_at: Some(start),
            received: start.0,
            idle_end: 0,
            transaction: None,
            final_lsn: 0,
            last_status: Instant::now(),
            status_pending: false,
            last_request: None,
        }
    }
}

/// Reads a table with `COPY (SELECT <read columns> … <filter>) TO STDOUT`
/// (text format; `filter`: empty, or a WHERE clause).
fn copy_table(
    tx: &mut postgres::Transaction<'_>,
    server: &str,
    table: &Table,
    filter: &str,
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<Row>, SourceError> {
    let columns: Vec<String> =
        table.columns.iter().zip(&table.read).filter(|(_, &r)| r).map(|(c, _)| quote_ident(c)).collect();
    let select = if columns.is_empty() { "1".to_string() } else { columns.join(", ") };
    let sql =
        format!("COPY (SELECT {select} FROM {}.{}{filter}) TO STDOUT", quote_ident(SCHEMA), quote_ident(&table.name));
    let what = || format!("reading table {}", table.name);
    let reader = tx.copy_out(&sql).map_err(pg_error(server, &what()))?;
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let mut line = Vec::new();
    let mut scratch = Vec::new();
    let mut packer = RowPacker::new();
    let mut rows = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(|e| copy_error(server, &what(), e))?;
        if n == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let row = table
            .decode_copy_line(&line, &mut scratch, &mut packer)
            .map_err(|source| SourceError::PostgresValue { table: table.name.clone(), source })?;
        rows.push(row);
        if rows.len() as u64 % PROGRESS_EVERY == 0 {
            progress(rows.len() as u64);
        }
    }
    Ok(rows)
}

/// ` WHERE "c" = '…' AND …` for `key` (values as quoted literals the
/// server coerces to the column's type; NULL as `IS NULL`).
fn key_filter(key: &[(String, Value)]) -> String {
    let conditions: Vec<String> = key
        .iter()
        .map(|(column, value)| {
            let column = quote_ident(column);
            let text = match value {
                Datum::Null => return format!("{column} IS NULL"),
                Datum::Bool(b) => b.to_string(),
                Datum::Int(i) => i.to_string(),
                Datum::Float(f) => format!("{f:?}"),
                Datum::Text(t) => t.to_string(),
                Datum::Blob(b) => format!("\\x{}", b.iter().map(|b| format!("{b:02x}")).collect::<String>()),
                other => other.pg_text().unwrap_or_default(),
            };
            format!("{column} = '{}'", text.replace('\'', "''"))
        })
        .collect();
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

/// A failed COPY read: the I/O error wraps the client's error.
fn copy_error(server: &str, what: &str, e: std::io::Error) -> SourceError {
    match e.into_inner().map(|inner| inner.downcast::<postgres::Error>()) {
        Some(Ok(source)) => SourceError::Postgres { server: server.into(), what: what.into(), source: *source },
        _ => SourceError::PostgresReplication { server: server.into(), what: what.into(), source: WireError::Closed },
    }
}

/// Resolves the spec against the catalog: per table (by lower-case name),
/// its schema and the columns views read.
fn plan<'a>(
    catalog: &'a Catalog,
    spec: &CaptureSpec,
) -> Result<BTreeMap<String, (&'a TableSchema, Vec<bool>)>, SourceError> {
    let mut planned: BTreeMap<String, (&TableSchema, Vec<bool>)> = BTreeMap::new();
    for captured in &spec.tables {
        let schema =
            catalog.get(&captured.name).ok_or_else(|| SourceError::UnknownTable { table: captured.name.clone() })?;
        let entry = planned
            .entry(schema.name.to_ascii_lowercase())
            .or_insert_with(|| (schema, vec![false; schema.columns.len()]));
        for column in &captured.columns {
            if column == "*" {
                entry.1.iter_mut().for_each(|r| *r = true);
                continue;
            }
            let index = schema
                .column_index(column)
                .ok_or_else(|| SourceError::UnknownColumn { table: schema.name.clone(), column: column.clone() })?;
            entry.1[index] = true;
        }
    }
    Ok(planned)
}

/// The captured tables as the stream decodes them, after checking that
/// they match the catalog and that their replica identity supplies the old
/// rows.
fn check_tables(
    planned: &BTreeMap<String, (&TableSchema, Vec<bool>)>,
    actual: &[PgTable],
) -> Result<Vec<Table>, SourceError> {
    let mut changed = Vec::new();
    let mut tables = Vec::new();
    for (lower, (schema, read)) in planned {
        let found = actual.iter().find(|t| t.schema.name.to_ascii_lowercase() == *lower);
        let Some(pg) =
            found.filter(|t| t.schema.columns == schema.columns && t.schema.primary_key == schema.primary_key)
        else {
            changed.push(schema.name.clone());
            continue;
        };
        let covered_by_key = check_replica_identity(pg, read)?;
        let key = if pg.identity_columns.is_empty() { &pg.schema.primary_key } else { &pg.identity_columns };
        tables.push(Table {
            name: pg.schema.name.clone(),
            columns: pg.schema.columns.iter().map(|c| c.name.clone()).collect(),
            types: pg.types.clone(),
            read: read.clone(),
            covered_by_key,
            key: key.clone(),
        });
    }
    if !changed.is_empty() {
        return Err(SourceError::SchemaChanged { tables: changed });
    }
    Ok(tables)
}

/// Whether the table's replica identity supplies the old rows (see the
/// module documentation); `Ok(true)` when its key covers every read column.
fn check_replica_identity(table: &PgTable, read: &[bool]) -> Result<bool, SourceError> {
    let names =
        |columns: &[usize]| -> Vec<&str> { columns.iter().map(|&i| table.schema.columns[i].name.as_str()).collect() };
    let identity = match table.replica_identity {
        b'f' => return Ok(false),
        b'n' => "NOTHING".to_string(),
        b'd' if table.identity_columns.is_empty() => "DEFAULT and no primary key".to_string(),
        b'd' => format!("DEFAULT (primary key {})", names(&table.identity_columns).join(", ")),
        b'i' if table.identity_columns.is_empty() => "USING INDEX (an index denorm cannot read)".to_string(),
        _ => format!("USING INDEX (columns {})", names(&table.identity_columns).join(", ")),
    };
    let error = |columns| SourceError::ReplicaIdentity {
        table: table.schema.name.clone(),
        identity: identity.clone(),
        columns,
    };
    if table.identity_columns.is_empty() {
        return Err(error(Vec::new()));
    }
    let missing: Vec<String> = (0..read.len())
        .filter(|&i| read[i] && !table.identity_columns.contains(&i))
        .map(|i| table.schema.columns[i].name.clone())
        .collect();
    if missing.is_empty() {
        Ok(true)
    } else {
        Err(error(missing))
    }
}

/// The captured tables whose columns or types differ from the plan.
fn changed_tables(tables: &[Table], actual: &[PgTable]) -> Vec<String> {
    tables
        .iter()
        .filter(|t| {
            let found = actual.iter().find(|a| a.schema.name == t.name);
            !found.is_some_and(|a| a.types == t.types && a.schema.columns.iter().map(|c| &c.name).eq(t.columns.iter()))
        })
        .map(|t| t.name.clone())
        .collect()
}

/// Fails unless logical replication can work: `wal_level`, the role's
/// REPLICATION attribute, a free slot (the slot denorm owns counts as free:
/// it is re-created) and a free WAL sender.
fn check_server(client: &mut Client, server: &str, names: &Names) -> Result<(), SourceError> {
    let row = client
        .query_one(
            "SELECT current_setting('wal_level'), current_user::text, \
             (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user), \
             current_setting('max_replication_slots')::int8, \
             (SELECT count(*) FROM pg_replication_slots WHERE slot_name <> $1), \
             current_setting('max_wal_senders')::int8, \
             (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender')",
            &[&names.slot],
        )
        .map_err(pg_error(server, "checking the server's replication settings"))?;
    let wal_level: String = row.get(0);
    if wal_level != "logical" {
        return Err(SourceError::WalLevel { server: server.to_string(), actual: wal_level });
    }
    if !row.get::<_, Option<bool>>(2).unwrap_or(false) {
        return Err(SourceError::ReplicationPrivilege { role: row.get(1) });
    }
    let (max_slots, used_slots): (i64, i64) = (row.get(3), row.get(4));
    if used_slots >= max_slots {
        return Err(SourceError::NoFreeReplicationSlot { max: max_slots });
    }
    let (max_senders, used_senders): (i64, i64) = (row.get(5), row.get(6));
    if used_senders >= max_senders {
        return Err(SourceError::NoFreeWalSender { max: max_senders });
    }
    Ok(())
}

/// Makes the publication publish inserts, updates, deletes and truncates
/// of exactly `tables`; changes nothing when it does already.
fn ensure_publication(client: &mut Client, server: &str, name: &str, tables: &[Table]) -> Result<(), SourceError> {
    let error = |what: &str| pg_error(server, what);
    let wanted: Vec<String> = tables.iter().map(|t| t.name.clone()).collect();
    let list = |names: &[String]| -> String {
        names.iter().map(|n| format!("{}.{}", quote_ident(SCHEMA), quote_ident(n))).collect::<Vec<_>>().join(", ")
    };
    let existing = client
        .query_opt(
            "SELECT puballtables, pubinsert AND pubupdate AND pubdelete AND pubtruncate FROM pg_publication WHERE pubname = $1",
            &[&name],
        )
        .map_err(error("looking up the publication"))?;
    let Some(existing) = existing else {
        let tables = if wanted.is_empty() { String::new() } else { format!(" FOR TABLE {}", list(&wanted)) };
        client
            .batch_execute(&format!("CREATE PUBLICATION {name}{tables}"))
            .map_err(error("creating the publication"))?;
        tracing::info!(publication = name, tables = wanted.len(), "created the publication");
        return Ok(());
    };
    let (all_tables, all_operations): (bool, bool) = (existing.get(0), existing.get(1));
    if !all_operations {
        client
            .batch_execute(&format!("ALTER PUBLICATION {name} SET (publish = 'insert, update, delete, truncate')"))
            .map_err(error("altering the publication"))?;
    }
    if all_tables {
        return Ok(());
    }
    let current: Vec<(String, String)> = client
        .query("SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1", &[&name])
        .map_err(error("listing the publication's tables"))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut current_sorted: Vec<&(String, String)> = current.iter().collect();
    current_sorted.sort();
    let same =
        current_sorted.len() == wanted.len() && current_sorted.iter().all(|(s, t)| s == SCHEMA && wanted.contains(t));
    if same {
        return Ok(());
    }
    let sql = if wanted.is_empty() {
        let all: Vec<String> = current.iter().map(|(s, t)| format!("{}.{}", quote_ident(s), quote_ident(t))).collect();
        format!("ALTER PUBLICATION {name} DROP TABLE {}", all.join(", "))
    } else {
        format!("ALTER PUBLICATION {name} SET TABLE {}", list(&wanted))
    };
    client.batch_execute(&sql).map_err(error("setting the publication's tables"))?;
    tracing::info!(publication = name, tables = wanted.len(), "updated the publication's tables");
    Ok(())
}

/// How far the replication slot `slot` is behind the server, read on
/// `client` (an ordinary connection: a caller that must not wait for the
/// query, such as the engine's follow loop, reads it on a connection and
/// thread of its own). `server` names the server in errors.
pub fn read_lag(client: &mut Client, server: &str, slot: &str) -> Result<Lag, SourceError> {
    let row = client
        .query_opt(
            "SELECT pg_current_wal_lsn()::text, confirmed_flush_lsn::text, restart_lsn::text \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .map_err(pg_error(server, "reading the slot's lag"))?
        .ok_or_else(|| SourceError::SlotMissing { slot: slot.to_string() })?;
    let lsn = |i: usize| row.get::<_, Option<String>>(i).as_deref().and_then(parse_lsn).unwrap_or_default();
    let (server_position, confirmed_flush, restart) = (lsn(0), lsn(1), lsn(2));
    Ok(Lag {
        server_position,
        confirmed_flush,
        lag_bytes: server_position.0.saturating_sub(confirmed_flush.0),
        retained_bytes: server_position.0.saturating_sub(restart.0),
    })
}

/// Drops the slot if it exists.
fn drop_slot(client: &mut Client, server: &str, slot: &str) -> Result<bool, SourceError> {
    let dropped = client
        .query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", &[&slot]);
    match dropped {
        Ok(rows) => Ok(!rows.is_empty()),
        Err(e) if e.code() == Some(&SqlState::OBJECT_IN_USE) => Err(SourceError::SlotInUse { slot: slot.to_string() }),
        Err(source) => {
            Err(SourceError::Postgres { server: server.into(), what: "dropping the replication slot".into(), source })
        }
    }
}

/// Drops denorm's replication slot and publication from the database at
/// `url`. Fails with the transient [`SourceError::SlotInUse`] while a
/// capture streams from the slot.
pub fn uninstall(url: &str, names: &Names) -> Result<Uninstalled, SourceError> {
    names.validate()?;
    let config = parse_url(url)?;
    let server = describe_server(&config);
    let mut client = connect_config(&config)?;
    let slot = drop_slot(&mut client, &server, &names.slot)?;
    let publication = client
        .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&names.publication])
        .map_err(pg_error(&server, "looking up the publication"))?
        .is_some();
    client
        .batch_execute(&format!("DROP PUBLICATION IF EXISTS {}", names.publication))
        .map_err(pg_error(&server, "dropping the publication"))?;
    Ok(Uninstalled { slot, publication })
}

/// The open transaction; [`PgCapture::change_target`] checked there is one.
fn transaction(stream: &mut Option<Stream>) -> &mut TransactionBuilder {
    stream.as_mut().and_then(|s| s.transaction.as_mut()).expect("a transaction is open")
}

fn protocol_error(server: &str, what: &str) -> SourceError {
    SourceError::PostgresReplication {
        server: server.to_string(),
        what: "reading the replication stream".into(),
        source: WireError::Protocol(what.to_string()),
    }
}

pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn pg_error(server: &str, what: &str) -> impl FnOnce(postgres::Error) -> SourceError {
    let (server, what) = (server.to_string(), what.to_string());
    move |source| SourceError::Postgres { server, what, source }
}

/// Maps a replication connection error: a slot held by another connection
/// is [`SourceError::SlotInUse`], a missing one [`SourceError::SlotMissing`].
/// A missing publication (dropped while streaming: pgoutput fails at the
/// next change) is [`SourceError::PublicationMissing`].
fn wire_error(server: &str, names: &Names, what: &str) -> impl FnOnce(WireError) -> SourceError {
    let (server, names, what) = (server.to_string(), names.clone(), what.to_string());
    move |source| match (source.code(), &source) {
        (Some("55006"), _) => SourceError::SlotInUse { slot: names.slot },
        (Some("42704"), WireError::Server(e)) if e.message.starts_with("publication ") => {
            SourceError::PublicationMissing { publication: names.publication }
        }
        (Some("42704"), _) if what == "starting replication" => SourceError::SlotMissing { slot: names.slot },
        _ => SourceError::PostgresReplication { server, what, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use denorm_types::{ColumnSchema, ScalarType};

    fn pg_table(identity: u8, identity_columns: Vec<usize>) -> PgTable {
        let column = |name: &str| ColumnSchema { name: name.into(), ty: ScalarType::Int, nullable: true };
        PgTable {
            oid: 1,
            schema: TableSchema {
                name: "users".into(),
                columns: vec![column("id"), column("name"), column("email")],
                primary_key: vec![0],
                unique_keys: vec![],
            },
            types: vec![super::super::PgType::Int8; 3],
            replica_identity: identity,
            identity_columns,
            unsupported: vec![],
        }
    }

    #[test]
    fn replica_identity_rule() {
        let key_only = [true, false, false];
        let name_too = [true, true, false];
        assert!(!check_replica_identity(&pg_table(b'f', vec![]), &name_too).unwrap());
        assert!(check_replica_identity(&pg_table(b'd', vec![0]), &key_only).unwrap());
        assert!(check_replica_identity(&pg_table(b'i', vec![0, 1]), &name_too).unwrap());

        let error = check_replica_identity(&pg_table(b'd', vec![0]), &name_too).unwrap_err();
        assert_eq!(
            error.to_string(),
            "table users has REPLICA IDENTITY DEFAULT (primary key id), so PostgreSQL logs only the key of the rows \
             UPDATE and DELETE replace, but views read users.name; denorm keeps no copy of source rows and needs the \
             whole old row to retract it: run ALTER TABLE users REPLICA IDENTITY FULL"
        );
        let error = check_replica_identity(&pg_table(b'd', vec![]), &key_only).unwrap_err();
        assert_eq!(
            error.to_string(),
            "table users has REPLICA IDENTITY DEFAULT and no primary key, so PostgreSQL logs nothing of the rows \
             UPDATE and DELETE replace (and, once the table is published, refuses those statements); run ALTER TABLE \
             users REPLICA IDENTITY FULL"
        );
        assert!(check_replica_identity(&pg_table(b'n', vec![]), &key_only).is_err());
    }

    #[test]
    fn names_are_validated() {
        assert!(Names::default().validate().is_ok());
        for bad in ["", "Denorm", "a-b", "x;drop", &"a".repeat(64)] {
            let names = Names { slot: bad.to_string(), ..Names::default() };
            assert!(matches!(names.validate(), Err(SourceError::PostgresName { .. })), "{bad}");
        }
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("users"), "\"users\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
