//! The engine's side of the dead-letter queue ([`denorm_serve::dlq`]):
//! what goes in, what comes out, and the state directory kept in step.
//!
//! ```text
//!  batch ──StateDir::apply──► take_absent: retractions of rows the input does not hold
//!    │                          → compensated in the batch (the views never see them) + entry
//!    ├── undecodable changes    → entry (table, key, position, reason, raw bytes)
//!    ├── repaired keys          → their entries are removed (a later change fixed the row)
//!    └── the rest               → the dataflow (counted as applied)
//!  POST /dlq/{id}/drop          → removed (list and state directory)
//!  POST /dlq/{id}/retry         → handed to [`super::dlq_retry`] (read again at the engine's position)
//! ```
//!
//! Invariant: an entry is listed and written to the state directory in the
//! same step (a failed write unlists it), durable with the batch, so what
//! `/dlq` shows survives a restart; without a state directory the list lives in
//! memory only. Detecting a retraction of a row the input does not hold
//! needs the stored input rows: without a state directory such a change
//! reaches the views as the source sent it.

use std::collections::BTreeMap;

use denorm_serve::dlq::{DeadLetter, DeadLetters, Request};
use denorm_serve::Publisher;
use denorm_source::Batch;
use denorm_types::Diff;
use tracing::{error, info, warn};

use crate::state_dir::{StateDir, StateError};

/// Loads the entries kept in the state directory into the shared list.
pub(crate) fn restore(publisher: &Publisher, state: &StateDir) {
    match state.dead_letters() {
        Ok(entries) => {
            if !entries.is_empty() {
                info!(entries = entries.len(), "dead-letter queue restored from the state directory");
            }
            publisher.dead_letters().restore(entries);
        }
        Err(reason) => warn!(%reason, "the dead-letter queue cannot be read; it starts empty"),
    }
}

/// Takes the retractions of rows the stored input did not hold out of
/// `batch` (each compensated by an insert of the same row, so the views'
/// net change is nil) and dead-letters them.
pub(crate) fn absent(publisher: &Publisher, state: &mut StateDir, batch: &mut Batch) -> Result<(), StateError> {
    let absent = state.take_absent();
    if absent.is_empty() {
        return Ok(());
    }
    let mut by_table: BTreeMap<String, Vec<(denorm_types::Row, Diff)>> = BTreeMap::new();
    for (table, row, excess) in absent {
        let text = format!("{row:?}");
        let reason = format!(
            "retraction of a row the input does not hold ({excess} more than held): a change-log row written by \
             hand, or a change applied twice; it is kept out of the views"
        );
        error!(%table, row = %text, "{reason}");
        let letter = DeadLetter {
            id: 0,
            table: table.clone(),
            key: text.clone(),
            position: batch.position.0,
            reason,
            raw: text.into_bytes(),
            at: unix_now(),
            retries: 0,
        };
        add(publisher, Some(&mut *state), letter)?;
        by_table.entry(table).or_default().push((row, excess));
    }
    for (table, compensation) in by_table {
        match batch.tables.iter_mut().find(|(t, _)| *t == table) {
            Some((_, changes)) => changes.extend(compensation),
            None => batch.tables.push((table, compensation)),
        }
    }
    Ok(())
}

/// Dead-letters the batch's undecodable changes and removes the entries
/// of keys a change in it repaired.
pub(crate) fn undecodable(
    publisher: &Publisher,
    mut state: Option<&mut StateDir>,
    batch: &Batch,
) -> Result<(), StateError> {
    for u in &batch.undecodable {
        let letter = DeadLetter {
            id: 0,
            table: u.table.clone(),
            key: u.key.clone(),
            position: u.position.0,
            reason: format!("cannot be decoded: {}", u.reason),
            raw: u.raw.clone(),
            at: unix_now(),
            retries: 0,
        };
        add(publisher, state.as_deref_mut(), letter)?;
    }
    let dlq = publisher.dead_letters();
    for (table, key) in &batch.repaired {
        for letter in dlq.list().into_iter().filter(|l| l.table == *table && l.key == *key) {
            info!(%table, %key, id = letter.id, "a later change repaired a dead-lettered row; its entry is removed");
            remove(dlq, state.as_deref_mut(), letter.id)?;
        }
    }
    let applied: usize = batch.tables.iter().map(|(_, changes)| changes.len()).sum();
    dlq.applied(applied as u64);
    Ok(())
}

/// Carries out the operators' drops (`POST /dlq/{id}/drop`); returns the
/// ids asked to be retried (`POST /dlq/{id}/retry`, see
/// [`super::dlq_retry`]).
pub(crate) fn requests(publisher: &Publisher, mut state: Option<&mut StateDir>) -> Result<Vec<u64>, StateError> {
    let dlq = publisher.dead_letters();
    let mut retries = Vec::new();
    for request in dlq.take_requests() {
        match request {
            Request::Drop(id) => {
                info!(id, "dead-letter entry dropped by request");
                remove(dlq, state.as_deref_mut(), id)?;
            }
            Request::Retry(id) => retries.push(id),
        }
    }
    Ok(retries)
}

fn add(publisher: &Publisher, state: Option<&mut StateDir>, letter: DeadLetter) -> Result<(), StateError> {
    let dlq = publisher.dead_letters();
    let listed = dlq.add(letter);
    if let Some(state) = state {
        if let Err(e) = state.put_dead_letter(&listed) {
            dlq.remove(listed.id);
            return Err(e);
        }
    }
    Ok(())
}

pub(super) fn remove(dlq: &DeadLetters, state: Option<&mut StateDir>, id: u64) -> Result<(), StateError> {
    if let Some(state) = state {
        state.remove_dead_letter(id)?;
    }
    dlq.remove(id);
    Ok(())
}

fn unix_now() -> f64 {
    super::unix_now()
}
