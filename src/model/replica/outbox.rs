//! The outbox: a replica's unacknowledged ops (its own and those adopted from other
//! tabs), in stamp order, until the server acknowledges them; and the next push
//! made from it.

use std::collections::{HashSet, VecDeque};

use super::{Event, Replica};
use crate::model::batch::MAX_SEQ;
use crate::model::op::Op;
use crate::model::uid::ClientId;
use crate::model::wire::PushRequest;

impl Replica {
    /// Drops the queued ops of `client` up to `through_seq` (the server stored them)
    /// and returns how many were dropped.
    ///
    /// `through_seq = u64::MAX` drops every queued op of `client`.
    ///
    /// If the server acknowledges more of this replica's own sequence than it has
    /// issued (the replica was restored from an older snapshot), the next sequence
    /// number moves past it so new ops are not mistaken for old ones. Only a real
    /// acknowledgement (at most [`MAX_SEQ`]) does that.
    pub fn ack(&mut self, client: ClientId, through_seq: u64) -> usize {
        let before = self.outbox.len();
        self.outbox
            .retain(|op| op.client != client || op.seq > through_seq);
        let dropped = before - self.outbox.len();
        if client == self.client() && through_seq >= self.next_seq && through_seq <= MAX_SEQ {
            self.next_seq = through_seq + 1;
        }
        if dropped > 0 {
            self.emit(&[Event::OutboxChanged]);
        }
        dropped
    }

    /// Unacknowledged ops, oldest (by stamp) first. It may hold other tabs' ops
    /// (adopted or merged), each client's in sequence order; push them with
    /// [`Replica::push_request`], which keeps the order safe.
    pub fn outbox(&self) -> &VecDeque<Op> {
        &self.outbox
    }

    /// How many ops wait for an ack.
    pub fn pending(&self) -> usize {
        self.outbox.len()
    }

    /// The next push: the oldest queued op and up to `max_ops - 1` more that
    /// follow it directly from the same client (a push carries one client's ops).
    /// Stopping at another client's op keeps causal order when the outbox holds
    /// another tab's ops too: the next push is sent once this one is acknowledged.
    /// `None` if nothing is queued.
    pub fn push_request(&self, max_ops: usize) -> Option<PushRequest> {
        let client = self.outbox.front()?.client;
        let ops = self
            .outbox
            .iter()
            .take_while(|op| op.client == client)
            .take(max_ops.max(1))
            .cloned()
            .collect();
        Some(PushRequest {
            list: self.list,
            client,
            ops,
        })
    }

    /// Takes over ops queued by another (closed) tab: merges them and queues them
    /// for pushing under their own client id (the server dedups by client and
    /// sequence, so a tab that pushes them too does no harm).
    pub fn adopt_outbox(&mut self, ops: Vec<Op>) {
        let mut events = Vec::new();
        for op in &ops {
            self.clock.observe(&op.stamp);
            self.merge_node(&op.to_delta(), &mut events);
        }
        if self.enqueue(&ops) {
            events.push(Event::OutboxChanged);
        }
        self.emit(&events);
    }

    /// Queues each op not queued yet (by client and sequence number), keeping the
    /// outbox in stamp order; true if any was.
    pub(super) fn enqueue<'a>(&mut self, ops: impl IntoIterator<Item = &'a Op>) -> bool {
        let mut queued: HashSet<(ClientId, u64)> =
            self.outbox.iter().map(|op| (op.client, op.seq)).collect();
        let mut added = false;
        for op in ops {
            if queued.insert((op.client, op.seq)) {
                self.note_own_seq(op);
                self.outbox.push_back(op.clone());
                added = true;
            }
        }
        if added {
            self.sort_outbox();
        }
        added
    }

    /// A queued op of this replica's own client from elsewhere (an older copy of
    /// itself) must not have its sequence number reused.
    fn note_own_seq(&mut self, op: &Op) {
        if op.client == self.client() && op.seq >= self.next_seq {
            self.next_seq = op.seq.saturating_add(1);
        }
    }

    /// Orders the outbox by stamp. Stamps follow causality (a replica's clock moves
    /// past everything it merged), so an op never precedes one it depends on, such
    /// as another tab's create of the node it edits; and within one client, stamp
    /// order is sequence order.
    pub(super) fn sort_outbox(&mut self) {
        self.outbox
            .make_contiguous()
            .sort_by_key(|op| (op.stamp, op.client, op.seq));
    }
}
