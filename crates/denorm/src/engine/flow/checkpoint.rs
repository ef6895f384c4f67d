//! The flow's part of a checkpoint: its one shared dataflow and the
//! publishing slot of each of its views. Flows with scheduled views (their
//! gathered changes and refresh times) or views added by a live reload
//! (dataflows of their own, rebuilt as one at the next session) are not
//! saved.

use denorm_core::checkpoint::{CheckpointError, Reader, Writer};
use denorm_types::Position;

use super::Flow;

impl Flow {
    /// Appends the flow's state to `w`.
    pub fn save_checkpoint(&self, w: &mut Writer) -> Result<(), CheckpointError> {
        if !self.scheduled.is_empty() {
            return Err(CheckpointError::Unsupported("views refreshed on a schedule".into()));
        }
        if self.slots.iter().any(|&(_, part)| part != 0) {
            return Err(CheckpointError::Unsupported("feed views".into()));
        }
        if !self.added.is_empty() || !self.failed.is_empty() {
            return Err(CheckpointError::Unsupported("views added by a reload, or failed".into()));
        }
        w.count(self.slots.len());
        for &(slot, part) in &self.slots {
            w.u64(slot as u64);
            w.u64(part as u64);
        }
        self.main.save_checkpoint(w)
    }

    /// Loads what [`Flow::save_checkpoint`] wrote into a new flow (built
    /// from the same views, no batch applied); returns its position, which
    /// becomes the flow's.
    pub fn load_checkpoint(&mut self, r: &mut Reader<'_>) -> Result<Position, CheckpointError> {
        if !self.scheduled.is_empty() {
            return Err(CheckpointError::Unsupported("views refreshed on a schedule".into()));
        }
        let n = r.count()?;
        let mut slots = Vec::with_capacity(n);
        for _ in 0..n {
            slots.push((r.u64()? as usize, r.u64()? as usize));
        }
        if slots != self.slots {
            return Err(CheckpointError::Mismatch("the views are published in other slots".into()));
        }
        let position = self.main.load_checkpoint(r)?;
        self.position = position;
        Ok(position)
    }

    /// The publishing slots of the flow's views (part 0: the view's rows).
    pub fn published_slots(&self) -> Vec<usize> {
        self.slots.iter().filter(|(_, part)| *part == 0).map(|(slot, _)| *slot).collect()
    }
}
