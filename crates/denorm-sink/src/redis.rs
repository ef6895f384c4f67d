//! The Redis sink (`kind = "redis"`): each view's rows as Redis keys, in
//! the layout [`layout`] documents (a hash or a JSON string per row; a
//! sorted set per feed partition), written by one synchronous connection
//! in the sink's runner thread.
//!
//! ```text
//!  apply(batch)     MULTI ─ per view: DEL keys read as unreadable, then per changed key
//!                           HSET/HDEL/DEL (hash), SET/DEL (json), ZADD/ZREM (feed),
//!                           PEXPIRE (ttl) ─ HSET {prefix}denorm:sink:positions view pos ─ EXEC
//!  rebuild(view)    SCAN MATCH {prefix}{view}:* + TYPE + HGETALL/GET/ZRANGE (what is there)
//!                   vs the rows' expected content ─► MULTI ─ DEL + rewrite each key that
//!                   differs, DEL each key no row has ─ HSET position ─ EXEC
//!  read(view)       the same SCAN, each key decoded back into rows
//! ```
//!
//! Invariants:
//! - A batch's changes and the positions of the views it advances are one
//!   `MULTI/EXEC`: a crash or a lost connection before `EXEC` leaves
//!   nothing (the server discards a transaction its client left), after it
//!   leaves everything. The stored position therefore names exactly the
//!   batches the keys hold, and the hub resumes from it exactly once.
//! - A rebuild is one `MULTI/EXEC` of the differences between what the keys
//!   hold and the view's rows, with the position: readers see the old rows
//!   or the new ones, never a mix, and a sink a few batches behind rewrites
//!   only the keys those batches changed. Redis runs a transaction without
//!   interleaving other clients' commands, so a large first rebuild blocks
//!   other clients of the server while it executes.
//! - Redis does not roll back a transaction when one of its commands fails
//!   (a key someone replaced by another type: `WRONGTYPE`); the batch's
//!   other commands and its position stay. Such a key is drift: `read`
//!   reports it, and the reconcile deletes and rewrites it.
//! - A key whose content this layout cannot read back (a field of no
//!   column, a value not of its column's type, another type of key, a key
//!   that is not the key of the row it holds) is left out of `read` and
//!   remembered: the next `apply` of its view deletes it first, so the
//!   reconcile's repair rewrites it whole.

pub mod layout;

use std::collections::BTreeMap;
use std::time::Duration;

use denorm_serve::feed::FeedInfo;
use denorm_serve::query::OrderTerm;
use denorm_types::{consolidate, Datum, Diff, Position, Row};
use redis::{Connection, Pipeline, RedisError, Value as RedisValue};

use crate::contract::{Sink, SinkBatch, SinkError, ViewSpec};
use crate::feed::{FeedPart, FeedSpec};
pub use layout::{Format, Layout, Member};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one command or transaction may take (a large rebuild is one).
const IO_TIMEOUT: Duration = Duration::from_secs(120);
/// Keys read per `SCAN` step and per pipelined read.
const SCAN_COUNT: usize = 1000;

/// The feed page function's body (`redis/feed.lua`).
const FEED_LUA: &str = include_str!("redis/feed.lua");
/// The field of `{prefix}denorm:sink:feeds` holding the page script for
/// `EVAL` (no view is named with `:`).
pub const SCRIPT_FIELD: &str = ":page_script";

/// The function library loaded at open: `denorm_feed_page`, read-only.
pub fn feed_function_library() -> String {
    format!(
        "#!lua name=denorm\n{FEED_LUA}\nredis.register_function{{function_name='denorm_feed_page', callback=page, \
         flags={{'no-writes'}}}}\n"
    )
}

/// The same page as an `EVAL` script (`EVAL script 0 prefix feed partition
/// [limit [offset]]`), for servers without functions.
pub fn feed_page_script() -> String {
    format!("{FEED_LUA}\nreturn page(KEYS, ARGV)\n")
}

/// A Redis sink's settings (`[[sink]] kind = "redis"`).
#[derive(Debug, Clone, PartialEq)]
pub struct RedisOptions {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Prepended to every key the sink writes (`prefix = "app:"`).
    pub prefix: String,
    /// Rows of keyed views as hashes or JSON strings (feeds: sorted sets).
    pub format: Format,
    /// Defensive expiry: every key written gets this time to live.
    pub ttl: Option<Duration>,
}

/// What a key holds, as fetched or as the rows say it should.
#[derive(Debug, Clone, PartialEq)]
enum Content {
    /// Hash fields, sorted by name.
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    Text(Vec<u8>),
    /// Sorted-set members, sorted by member, with their scores.
    Sorted(Vec<(Vec<u8>, f64)>),
    /// A key of a type this layout never writes.
    Other,
}

/// The Redis sink (see the module documentation).
pub struct RedisSink {
    options: RedisOptions,
    /// The URL without its password, for messages.
    target: String,
    client: redis::Client,
    connection: Option<Connection>,
    specs: Vec<ViewSpec>,
    layouts: Vec<Layout>,
    /// Per view: keys `read` could not decode, deleted by the next apply.
    unreadable: Vec<Vec<Vec<u8>>>,
}

impl std::fmt::Debug for RedisSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSink")
            .field("target", &self.target)
            .field("prefix", &self.options.prefix)
            .field("format", &self.options.format)
            .field("connected", &self.connection.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisSink {
    /// A sink for `options`; nothing is connected before [`Sink::open`].
    /// Fails only on a URL the client cannot read.
    pub fn new(options: RedisOptions) -> Result<RedisSink, SinkError> {
        let target = redact(&options.url);
        let client = redis::Client::open(options.url.as_str()).map_err(|e| SinkError::Definite {
            target: target.clone(),
            action: "reading the URL".into(),
            hint: "write it as redis://[user:password@]host:port[/db]".into(),
            source: Some(Box::new(e)),
        })?;
        Ok(RedisSink {
            options,
            target,
            client,
            connection: None,
            specs: Vec::new(),
            layouts: Vec::new(),
            unreadable: Vec::new(),
        })
    }

    fn connection(&mut self) -> Result<&mut Connection, SinkError> {
        if self.connection.is_none() {
            let connection =
                self.client.get_connection_with_timeout(CONNECT_TIMEOUT).map_err(|e| self.error("connecting", e))?;
            connection.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| self.error("connecting", e))?;
            connection.set_write_timeout(Some(IO_TIMEOUT)).map_err(|e| self.error("connecting", e))?;
            self.connection = Some(connection);
        }
        Ok(self.connection.as_mut().expect("connected just above"))
    }

    /// Runs `f` on the connection; any error drops the connection (the next
    /// call connects again) and is classified.
    fn with<T>(
        &mut self,
        action: &str,
        f: impl FnOnce(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, SinkError> {
        let connection = self.connection()?;
        match f(connection) {
            Ok(value) => Ok(value),
            Err(e) => {
                self.connection = None;
                Err(self.error(action, e))
            }
        }
    }

    fn error(&self, action: &str, e: RedisError) -> SinkError {
        classify(&self.target, action, e)
    }

    fn layout_of(&self, spec: &ViewSpec) -> Result<Layout, SinkError> {
        let unsupported = |reason: String| SinkError::Unsupported { kind: "redis", view: spec.name.clone(), reason };
        if spec.name.contains(':') {
            return Err(unsupported("its name holds ':', the separator of the sink's keys".into()));
        }
        let feed = spec.partition_by.map(|partition| FeedInfo {
            partition,
            // The feed's NULL placement as the HTTP API's: NULLs largest.
            order: spec
                .order
                .iter()
                .map(|&(column, descending)| OrderTerm { column, descending, nulls_first: descending, collation: None })
                .collect(),
            ..FeedInfo::default()
        });
        if feed.is_none() && spec.is_multiset() {
            return Err(unsupported(
                "it has no key (rows may repeat), and a Redis key names one row; give the view a key, \
                 e.g. WITH (key = 'id'), or select a unique column"
                    .into(),
            ));
        }
        let member = match spec.feed.as_ref().map(|f| f.part) {
            None | Some(FeedPart::Fanout) => Member::Row,
            Some(FeedPart::Celebrities) => Member::Celebrity,
            Some(FeedPart::Edges) => Member::Edge,
        };
        let columns = spec.columns.iter().map(|c| (c.name.clone(), c.ty)).collect();
        Ok(Layout::new(&self.options.prefix, &spec.name, self.options.format, columns, spec.key.clone(), feed)
            .with_member(member))
    }

    /// Records each feed's `retain` and the page script in
    /// `{prefix}denorm:sink:feeds`, and loads the page function
    /// (`FUNCTION LOAD REPLACE`; a server without functions — before Redis
    /// 7 — is told in the log: `EVAL` the stored script instead).
    fn prepare_feeds(&mut self, views: &[ViewSpec]) -> Result<(), SinkError> {
        let feeds: Vec<&FeedSpec> =
            views.iter().filter_map(|v| v.feed.as_ref()).filter(|f| f.part == FeedPart::Fanout).collect();
        if feeds.is_empty() {
            return Ok(());
        }
        let meta = Layout::feeds_key(&self.options.prefix);
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("HSET").arg(&meta).arg(SCRIPT_FIELD).arg(feed_page_script()).ignore();
        for feed in feeds {
            pipe.cmd("HSET")
                .arg(&meta)
                .arg(&feed.feed)
                .arg(feed.retain.map_or(String::new(), |r| r.to_string()))
                .ignore();
        }
        self.with("recording the feeds", |c| pipe.query::<()>(c))?;
        let loaded = self.with("loading the feed page function", |c| {
            match redis::cmd("FUNCTION").arg("LOAD").arg("REPLACE").arg(feed_function_library()).query::<String>(c) {
                Err(e) if e.to_string().to_ascii_lowercase().contains("unknown command") => Ok(false),
                other => other.map(|_| true),
            }
        })?;
        if !loaded {
            tracing::info!(target = %self.target, "this Redis has no functions (before 7.0): read feed pages with \
                EVAL of the script in HGET {meta} {SCRIPT_FIELD}");
        }
        Ok(())
    }

    /// Every key of view `view` and what it holds.
    fn fetch(&mut self, view: usize) -> Result<BTreeMap<Vec<u8>, Content>, SinkError> {
        let pattern = self.layouts[view].scan_pattern();
        let keys = self.with("scanning the view's keys", |c| scan(c, &pattern))?;
        let mut contents = BTreeMap::new();
        for chunk in keys.chunks(SCAN_COUNT) {
            let fetched = self.with("reading the view's keys", |c| fetch_chunk(c, chunk))?;
            contents.extend(chunk.iter().cloned().zip(fetched).filter_map(|(key, content)| Some((key, content?))));
        }
        let layout = &self.layouts[view];
        // A view named `denorm` shares its key start with the positions hash.
        let (positions_key, feeds_key) =
            (Layout::positions_key(&self.options.prefix), Layout::feeds_key(&self.options.prefix));
        contents.retain(|key, _| {
            layout.owns(key) && key.as_slice() != positions_key.as_bytes() && key.as_slice() != feeds_key.as_bytes()
        });
        Ok(contents)
    }

    /// Queues view `view`'s changes on `pipe` (see [`Layout`]).
    fn queue_changes(&self, pipe: &mut Pipeline, view: usize, changes: &[(Row, Diff)]) {
        let layout = &self.layouts[view];
        for key in &self.unreadable[view] {
            pipe.cmd("DEL").arg(key).ignore();
        }
        if layout.feed().is_some() {
            for (row, diff) in changes {
                let (key, (score, member)) = (layout.row_key(row), layout.feed_entry(row).expect("a feed layout"));
                if *diff > 0 {
                    pipe.cmd("ZADD").arg(&key).arg(score).arg(member).ignore();
                    self.expire(pipe, &key);
                } else {
                    pipe.cmd("ZREM").arg(&key).arg(member).ignore();
                }
            }
            return;
        }
        let mut by_key: BTreeMap<Vec<u8>, (Option<&Row>, Option<&Row>)> = BTreeMap::new();
        for (row, diff) in changes {
            let entry = by_key.entry(layout.row_key(row)).or_default();
            if *diff < 0 {
                entry.0 = Some(row);
            } else {
                entry.1 = Some(row);
            }
        }
        for (key, (old, new)) in by_key {
            self.queue_row(pipe, layout, &key, old, new);
        }
    }

    fn queue_row(&self, pipe: &mut Pipeline, layout: &Layout, key: &[u8], old: Option<&Row>, new: Option<&Row>) {
        let Some(new) = new else {
            pipe.cmd("DEL").arg(key).ignore();
            return;
        };
        if layout.format() == Format::Json {
            let set = pipe.cmd("SET").arg(key).arg(layout.json(new));
            if let Some(ttl) = self.options.ttl {
                set.arg("PX").arg(ttl_millis(ttl));
            }
            set.ignore();
            return;
        }
        if let Some(update) = old.and_then(|old| layout.hash_update(old, new)) {
            if !update.set.is_empty() {
                let hset = pipe.cmd("HSET").arg(key);
                for (name, value) in update.set {
                    hset.arg(name).arg(value);
                }
                hset.ignore();
            }
            if !update.delete.is_empty() {
                pipe.cmd("HDEL").arg(key).arg(update.delete).ignore();
            }
            self.expire(pipe, key);
            return;
        }
        let fields = layout.hash_fields(new);
        let old_fields = old.map(|old| layout.hash_fields(old)).unwrap_or_default();
        let gone: Vec<&[u8]> = old_fields
            .iter()
            .filter(|(name, _)| !fields.iter().any(|(n, _)| n == name))
            .map(|(name, _)| *name)
            .collect();
        let changed: Vec<&(&[u8], Vec<u8>)> = fields.iter().filter(|f| !old_fields.contains(f)).collect();
        if !changed.is_empty() {
            let hset = pipe.cmd("HSET").arg(key);
            for (name, value) in changed {
                hset.arg(name).arg(value);
            }
            hset.ignore();
        }
        if !gone.is_empty() {
            pipe.cmd("HDEL").arg(key).arg(gone).ignore();
        }
        self.expire(pipe, key);
    }

    fn expire(&self, pipe: &mut Pipeline, key: &[u8]) {
        if let Some(ttl) = self.options.ttl {
            pipe.cmd("PEXPIRE").arg(key).arg(ttl_millis(ttl)).ignore();
        }
    }

    /// Queues the writing of `content` under `key` (which does not exist).
    fn queue_content(&self, pipe: &mut Pipeline, key: &[u8], content: &Content) {
        match content {
            Content::Hash(fields) => {
                let hset = pipe.cmd("HSET").arg(key);
                for (name, value) in fields {
                    hset.arg(name).arg(value);
                }
                hset.ignore();
            }
            Content::Text(text) => {
                pipe.cmd("SET").arg(key).arg(text).ignore();
            }
            Content::Sorted(members) => {
                let zadd = pipe.cmd("ZADD").arg(key);
                for (member, score) in members {
                    zadd.arg(*score).arg(member);
                }
                zadd.ignore();
            }
            Content::Other => return,
        }
        self.expire(pipe, key);
    }

    /// What view `view`'s keys hold when they hold exactly `rows`.
    fn expected(&self, view: usize, rows: &mut dyn Iterator<Item = (&Row, Diff)>) -> BTreeMap<Vec<u8>, Content> {
        let layout = &self.layouts[view];
        let mut out: BTreeMap<Vec<u8>, Content> = BTreeMap::new();
        for (row, diff) in rows {
            if diff <= 0 {
                continue;
            }
            let key = layout.row_key(row);
            if let Some((score, member)) = layout.feed_entry(row) {
                if let Content::Sorted(members) = out.entry(key).or_insert_with(|| Content::Sorted(Vec::new())) {
                    members.push((member, score));
                }
                continue;
            }
            let content = match layout.format() {
                Format::Hash => {
                    let mut fields: Vec<(Vec<u8>, Vec<u8>)> =
                        layout.hash_fields(row).into_iter().map(|(name, value)| (name.to_vec(), value)).collect();
                    fields.sort();
                    Content::Hash(fields)
                }
                Format::Json => Content::Text(layout.json(row)),
            };
            out.insert(key, content);
        }
        for content in out.values_mut() {
            if let Content::Sorted(members) = content {
                members.sort_by(|a, b| a.0.cmp(&b.0));
                members.dedup_by(|a, b| a.0 == b.0);
            }
        }
        out
    }

    /// The rows `content` under `key` holds; `None` when it is not what
    /// this layout writes there.
    fn decode(&self, view: usize, key: &[u8], content: &Content) -> Option<Vec<Row>> {
        let layout = &self.layouts[view];
        let rows = match (content, layout.feed().is_some(), layout.format()) {
            (Content::Sorted(members), true, _) => {
                let mut rows = Vec::with_capacity(members.len());
                for (member, score) in members {
                    let row = layout.decode_member(member)?;
                    // The member and score must be the row's own.
                    let (expected_score, expected_member) = layout.feed_entry(&row)?;
                    if expected_member != *member || expected_score.to_bits() != score.to_bits() {
                        return None;
                    }
                    rows.push(row);
                }
                rows
            }
            (Content::Hash(fields), false, Format::Hash) => vec![layout.decode_hash(fields)?],
            (Content::Text(json), false, Format::Json) => vec![layout.decode_json(json)?],
            _ => return None,
        };
        rows.iter().all(|row| layout.row_key(row) == key).then_some(rows)
    }
}

impl Sink for RedisSink {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn open(&mut self, views: &[ViewSpec]) -> Result<Vec<Option<Position>>, SinkError> {
        self.layouts = views.iter().map(|spec| self.layout_of(spec)).collect::<Result<_, _>>()?;
        self.specs = views.to_vec();
        self.unreadable = vec![Vec::new(); views.len()];
        self.prepare_feeds(views)?;
        let positions_key = Layout::positions_key(&self.options.prefix);
        let names: Vec<&str> = views.iter().map(|v| v.name.as_str()).collect();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let stored: Vec<Option<String>> = self
            .with("reading the stored positions", |c| redis::cmd("HMGET").arg(&positions_key).arg(&names).query(c))?;
        Ok(stored.into_iter().map(|p| p.and_then(|p| p.parse().ok()).map(Position)).collect())
    }

    fn apply(&mut self, batch: &SinkBatch) -> Result<(), SinkError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        let positions_key = Layout::positions_key(&self.options.prefix);
        let mut advanced = Vec::new();
        for (view, changes) in batch.views.iter().enumerate() {
            let Some(changes) = changes else { continue };
            self.queue_changes(&mut pipe, view, changes);
            advanced.push(view);
        }
        if advanced.is_empty() {
            return Ok(());
        }
        let hset = pipe.cmd("HSET").arg(&positions_key);
        for &view in &advanced {
            hset.arg(&self.specs[view].name).arg(batch.position.0);
        }
        hset.ignore();
        self.with("applying a batch", |c| pipe.query::<()>(c))?;
        for view in advanced {
            self.unreadable[view].clear();
        }
        Ok(())
    }

    fn rebuild(
        &mut self,
        view: usize,
        rows: &mut dyn Iterator<Item = (&Row, Diff)>,
        position: Position,
    ) -> Result<(), SinkError> {
        let expected = self.expected(view, rows);
        let actual = self.fetch(view)?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for key in actual.keys().filter(|key| !expected.contains_key(*key)) {
            pipe.cmd("DEL").arg(key).ignore();
        }
        for (key, content) in &expected {
            match actual.get(key) {
                Some(found) if found == content => continue,
                Some(_) => {
                    pipe.cmd("DEL").arg(key).ignore();
                }
                None => {}
            }
            self.queue_content(&mut pipe, key, content);
        }
        let positions_key = Layout::positions_key(&self.options.prefix);
        pipe.cmd("HSET").arg(&positions_key).arg(&self.specs[view].name).arg(position.0).ignore();
        self.with("rebuilding the view", |c| pipe.query::<()>(c))?;
        self.unreadable[view].clear();
        Ok(())
    }

    /// JSON (format `json`, feed members) writes NaN and the infinities as
    /// `null`, as the HTTP API does: they read back as NULL.
    fn stored(&self, view: usize, row: &Row) -> Row {
        let layout = &self.layouts[view];
        let json = layout.format() == Format::Json || layout.feed().is_some();
        if !json || !row.iter().any(|d| matches!(d, Datum::Float(x) if !x.is_finite())) {
            return row.clone();
        }
        let datums: Vec<Datum<'_>> =
            row.iter().map(|d| if matches!(d, Datum::Float(x) if !x.is_finite()) { Datum::Null } else { d }).collect();
        Row::pack(datums.iter())
    }

    /// A keyed view's sampled keys are read one by one (pipelined), not by
    /// a scan of the view; a feed is read whole and filtered.
    fn read_keys(&mut self, view: usize, key: &[usize], keys: &[Row]) -> Result<Vec<(Row, Diff)>, SinkError> {
        if self.layouts[view].feed().is_some() || key != self.specs[view].key.as_slice() {
            let wanted: std::collections::HashSet<&Row> = keys.iter().collect();
            let rows = self.read(view)?;
            return Ok(rows
                .into_iter()
                .filter(|(row, _)| wanted.contains(&Row::pack(key.iter().map(|&k| row.get(k)))))
                .collect());
        }
        let names: Vec<Vec<u8>> = keys.iter().filter_map(|k| self.layouts[view].key_of(k)).collect();
        let mut rows = Vec::with_capacity(names.len());
        for chunk in names.chunks(SCAN_COUNT) {
            let fetched = self.with("reading the view's keys", |c| fetch_chunk(c, chunk))?;
            for (name, content) in chunk.iter().zip(fetched) {
                let Some(content) = content else { continue };
                match self.decode(view, name, &content) {
                    Some(decoded) => rows.extend(decoded.into_iter().map(|row| (row, 1))),
                    None => self.unreadable[view].push(name.clone()),
                }
            }
        }
        consolidate(&mut rows);
        Ok(rows)
    }

    fn read(&mut self, view: usize) -> Result<Vec<(Row, Diff)>, SinkError> {
        let contents = self.fetch(view)?;
        let mut rows = Vec::with_capacity(contents.len());
        let mut unreadable = Vec::new();
        for (key, content) in &contents {
            match self.decode(view, key, content) {
                Some(decoded) => rows.extend(decoded.into_iter().map(|row| (row, 1))),
                None => unreadable.push(key.clone()),
            }
        }
        self.unreadable[view] = unreadable;
        consolidate(&mut rows);
        Ok(rows)
    }
}

/// Every key matching `pattern` (`SCAN` to the end: a key present for the
/// whole scan is returned at least once; duplicates removed).
fn scan(connection: &mut Connection, pattern: &str) -> redis::RedisResult<Vec<Vec<u8>>> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) =
            redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(SCAN_COUNT).query(connection)?;
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// What each of `keys` holds; `None` for a key that does not exist (gone
/// since the scan, or never written).
fn fetch_chunk(connection: &mut Connection, keys: &[Vec<u8>]) -> redis::RedisResult<Vec<Option<Content>>> {
    let mut types = redis::pipe();
    for key in keys {
        types.cmd("TYPE").arg(key);
    }
    let types: Vec<String> = types.query(connection)?;
    let mut reads = redis::pipe();
    for (key, ty) in keys.iter().zip(&types) {
        match ty.as_str() {
            "hash" => reads.cmd("HGETALL").arg(key),
            "string" => reads.cmd("GET").arg(key),
            "zset" => reads.cmd("ZRANGE").arg(key).arg(0).arg(-1).arg("WITHSCORES"),
            _ => reads.cmd("EXISTS").arg(key),
        };
    }
    let values: Vec<RedisValue> = reads.query(connection)?;
    // A key gone since (type "none") holds nothing.
    Ok(types.iter().zip(values).map(|(ty, value)| (ty != "none").then(|| content_of(ty, value))).collect())
}

fn content_of(ty: &str, value: RedisValue) -> Content {
    let parsed = match ty {
        "hash" => redis::from_redis_value::<Vec<(Vec<u8>, Vec<u8>)>>(value).ok().map(|mut fields| {
            fields.sort();
            Content::Hash(fields)
        }),
        "string" => redis::from_redis_value::<Vec<u8>>(value).ok().map(Content::Text),
        "zset" => redis::from_redis_value::<Vec<(Vec<u8>, f64)>>(value).ok().map(|mut members| {
            members.sort_by(|a, b| a.0.cmp(&b.0));
            Content::Sorted(members)
        }),
        _ => None,
    };
    parsed.unwrap_or(Content::Other)
}

fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Classifies a client error: a connection that cannot be made or broke,
/// a timeout, a server loading its data or busy → retried; anything else
/// (authentication, a wrong database, a command refused) needs a change.
fn classify(target: &str, action: &str, e: RedisError) -> SinkError {
    use redis::{ErrorKind, ServerErrorKind};
    let transient_server = matches!(
        e.kind(),
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::ExecAbort
        )
    );
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
        return SinkError::Unreachable { target: target.to_owned(), source: Box::new(e) };
    }
    if transient_server {
        return SinkError::Transient { target: target.to_owned(), action: action.to_owned(), source: Box::new(e) };
    }
    let hint = match e.kind() {
        ErrorKind::AuthenticationFailed => "check the user and password in the sink's url".to_owned(),
        ErrorKind::Server(ServerErrorKind::NoPerm) => {
            "grant the sink's user the commands and keys it writes".to_owned()
        }
        ErrorKind::Server(ServerErrorKind::ReadOnly) => "point the sink's url at the primary, not a replica".to_owned(),
        _ => "see the server's message; the sink retries at its longest wait".to_owned(),
    };
    SinkError::Definite { target: target.to_owned(), action: action.to_owned(), hint, source: Some(Box::new(e)) }
}

/// `url` with its password replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    match rest.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://{credentials}@{host}"),
        },
        None => url.to_owned(),
    }
}
