//! Per-chat ordering of what reaches this node from several writers (cluster mode).
//!
//! PostgreSQL's per-chat `seq` is the only sequencer: if `seq = n` is committed, every
//! smaller `seq` of the chat was committed before it. Nodes publish after their commits,
//! and the broker may deliver their messages in any order, twice, or not at all. One
//! `ChatSequencer` per chat with a local subscriber turns that into what a single node
//! gives: `new-message` in `seq` order, with no gap and no duplicate, and events that
//! follow a message (an edit, a delete, a read marker) only after that message.
//!
//! A gap is first waited out (the late message is usually in flight), then filled from the
//! database by the caller (`Verdict::Fill`). The type holds no clock and does no I/O, so
//! the property tests below drive it through every interleaving.

use std::collections::BTreeMap;

/// Most items held for one chat; past it the chat is out of step (`Verdict::Resync`).
pub const MAX_HELD: usize = 4096;

/// One chat's state on this node.
#[derive(Debug)]
pub struct ChatSequencer<T> {
    /// The highest `seq` handed on, in order; `None` until a local subscriber read its
    /// position (everything offered before is held).
    delivered: Option<i64>,
    /// `new-message` items above `delivered`, by `seq`.
    messages: BTreeMap<i64, T>,
    /// Items that may pass once `delivered` reaches their key, in arrival order per key.
    following: BTreeMap<i64, Vec<T>>,
    held: usize,
    /// The highest `seq` known to be committed (offered, followed, or read from the
    /// database): below it, anything not delivered is a gap.
    known: i64,
}

/// What the caller should do after an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing is missing.
    InOrder,
    /// Something above `delivered` is held: a gap. The caller waits briefly, then asks
    /// the database for the messages after `after` (and offers them back with `fill`).
    Gap { after: i64 },
    /// Too much is held: the caller drops this chat's state and tells its connections
    /// to resync.
    Resync,
}

impl<T> Default for ChatSequencer<T> {
    fn default() -> Self {
        Self { delivered: None, messages: BTreeMap::new(), following: BTreeMap::new(), held: 0, known: 0 }
    }
}

impl<T> ChatSequencer<T> {
    /// A chat whose subscriber's position is not known yet: everything is held.
    pub fn new() -> Self {
        Self::default()
    }

    pub fn delivered(&self) -> Option<i64> {
        self.delivered
    }

    /// A local connection subscribed, then read the chat's last `seq` as `position`: what
    /// is above it must reach that connection, what is at or below it need not (the
    /// connection replays it from the database if it asked to). The first position
    /// starts the sequence; a later one never moves it back, and moves it forward only
    /// past what nobody here can still be waiting for.
    pub fn position(&mut self, position: i64, out: &mut Vec<T>) -> Verdict {
        // Once started, a later position never moves the sequence: if it is behind the
        // database, the missing messages are committed and will come (or be filled), and
        // the new connection's own floor drops what it already has.
        if self.delivered.is_none() {
            self.delivered = Some(position);
            self.discard_through(position);
        }
        self.release(out)
    }

    /// A `new-message` with `seq`. Duplicates (at or below `delivered`, or already held)
    /// are dropped.
    pub fn message(&mut self, seq: i64, item: T, out: &mut Vec<T>) -> Verdict {
        if self.delivered.is_some_and(|d| seq <= d) || self.messages.contains_key(&seq) {
            return self.verdict();
        }
        self.messages.insert(seq, item);
        self.held += 1;
        self.known = self.known.max(seq);
        self.release(out)
    }

    /// The database says messages up to `seq` are committed (a catch-up read): what is
    /// not delivered up to there is a gap, even with nothing held.
    pub fn expect(&mut self, seq: i64) -> Verdict {
        self.known = self.known.max(seq);
        self.verdict()
    }

    /// An event that must not overtake the message with `seq` (which is committed).
    pub fn following(&mut self, seq: i64, item: T, out: &mut Vec<T>) -> Verdict {
        if self.delivered.is_some_and(|d| seq <= d) {
            out.push(item);
            return self.verdict();
        }
        self.following.entry(seq).or_default().push(item);
        self.held += 1;
        self.known = self.known.max(seq);
        self.release(out)
    }

    /// Messages read from the database after a gap: offered like live ones.
    pub fn fill(&mut self, rows: impl IntoIterator<Item = (i64, T)>, out: &mut Vec<T>) -> Verdict {
        for (seq, item) in rows {
            if self.delivered.is_some_and(|d| seq <= d) || self.messages.contains_key(&seq) {
                continue;
            }
            self.messages.insert(seq, item);
            self.held += 1;
            self.known = self.known.max(seq);
        }
        self.release(out)
    }

    /// Hands on every message that continues the sequence, then every event whose message
    /// has been handed on.
    fn release(&mut self, out: &mut Vec<T>) -> Verdict {
        let Some(mut delivered) = self.delivered else { return self.verdict() };
        while let Some(entry) = self.messages.first_entry() {
            if *entry.key() != delivered + 1 {
                break;
            }
            delivered += 1;
            out.push(entry.remove());
            self.held -= 1;
            // Events that follow this message go right after it.
            if let Some(items) = self.following.remove(&delivered) {
                self.held -= items.len();
                out.extend(items);
            }
        }
        self.delivered = Some(delivered);
        // Events keyed at or below `delivered` from before the sequence started.
        while let Some(entry) = self.following.first_entry() {
            if *entry.key() > delivered {
                break;
            }
            let items = entry.remove();
            self.held -= items.len();
            out.extend(items);
        }
        self.verdict()
    }

    fn discard_through(&mut self, position: i64) {
        let keep = self.messages.split_off(&(position + 1));
        self.held -= self.messages.len();
        self.messages = keep;
    }

    fn verdict(&self) -> Verdict {
        if self.held > MAX_HELD {
            return Verdict::Resync;
        }
        match self.delivered {
            Some(after) if self.is_waiting() => Verdict::Gap { after },
            _ => Verdict::InOrder,
        }
    }

    /// Whether a gap is open: something is held, or the database is known to be ahead.
    pub fn is_waiting(&self) -> bool {
        self.held > 0 || self.delivered.is_some_and(|d| d < self.known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Item {
        Msg(i64),
        /// An edit of the message with that seq.
        Edit(i64),
    }

    /// A tiny deterministic generator (xorshift): the tests need no crate and repeat.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Checks what a connection would see: messages strictly in order from `start + 1`,
    /// each once, and every edit after its message.
    fn check(out: &[Item], start: i64, upto: i64) {
        let mut next = start + 1;
        let mut seen = std::collections::HashSet::new();
        for item in out {
            match item {
                Item::Msg(s) => {
                    assert_eq!(*s, next, "out of order or duplicated: {out:?}");
                    next += 1;
                    seen.insert(*s);
                }
                Item::Edit(s) => {
                    assert!(*s <= start || seen.contains(s), "edit of {s} before its message: {out:?}");
                }
            }
        }
        assert_eq!(next, upto + 1, "not complete: {out:?}");
    }

    #[test]
    fn in_order_input_passes_straight_through() {
        let mut s = ChatSequencer::new();
        let mut out = Vec::new();
        assert_eq!(s.position(0, &mut out), Verdict::InOrder);
        for seq in 1..=5 {
            assert_eq!(s.message(seq, Item::Msg(seq), &mut out), Verdict::InOrder);
        }
        check(&out, 0, 5);
    }

    #[test]
    fn a_gap_is_reported_and_closed_by_the_late_message_or_a_fill() {
        let mut s = ChatSequencer::new();
        let mut out = Vec::new();
        s.position(0, &mut out);
        assert_eq!(s.message(2, Item::Msg(2), &mut out), Verdict::Gap { after: 0 });
        assert_eq!(s.following(2, Item::Edit(2), &mut out), Verdict::Gap { after: 0 });
        assert!(out.is_empty());
        assert_eq!(s.fill([(1, Item::Msg(1)), (2, Item::Msg(2))], &mut out), Verdict::InOrder);
        assert_eq!(out, vec![Item::Msg(1), Item::Msg(2), Item::Edit(2)]);
        // The late copy of 1 arrives after the fill: a duplicate.
        assert_eq!(s.message(1, Item::Msg(1), &mut out), Verdict::InOrder);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn offers_before_the_position_are_held_then_trimmed() {
        let mut s = ChatSequencer::new();
        let mut out = Vec::new();
        s.message(4, Item::Msg(4), &mut out);
        s.message(6, Item::Msg(6), &mut out);
        assert!(out.is_empty());
        assert_eq!(s.position(4, &mut out), Verdict::Gap { after: 4 });
        s.message(5, Item::Msg(5), &mut out);
        check(&out, 4, 6);
    }

    #[test]
    fn too_much_held_asks_for_a_resync() {
        let mut s = ChatSequencer::new();
        let mut out = Vec::new();
        s.position(0, &mut out);
        let mut last = Verdict::InOrder;
        for seq in 2..(MAX_HELD as i64 + 3) {
            last = s.message(seq, Item::Msg(seq), &mut out);
        }
        assert_eq!(last, Verdict::Resync);
    }

    /// Random interleavings of two writers' messages and edits, with duplicates and drops;
    /// whatever is dropped is filled from the "database" (everything committed) when a gap
    /// is reported. The output is always in order, complete and duplicate-free.
    #[test]
    fn any_interleaving_with_duplicates_and_drops_comes_out_in_order() {
        for seed in 1..=500u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let n = 1 + rng.below(60) as i64;
            let start = rng.below(3) as i64;
            // What the broker delivers: every committed message and an edit of some, in
            // a random order, some twice, some never.
            let mut wire: Vec<Item> = Vec::new();
            for seq in (start + 1)..=n + start {
                for _ in 0..(rng.below(4).saturating_sub(1) + 1).min(2) {
                    if rng.below(8) != 0 {
                        wire.push(Item::Msg(seq));
                    }
                }
                if rng.below(3) == 0 {
                    wire.push(Item::Edit(seq));
                }
            }
            for i in (1..wire.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                wire.swap(i, j);
            }
            let end = n + start;
            let mut s = ChatSequencer::new();
            let mut out = Vec::new();
            // The position may be read before or after some of the wire arrived.
            let at = rng.below(wire.len() as u64 + 1) as usize;
            let mut verdict = Verdict::InOrder;
            for (i, item) in wire.into_iter().enumerate() {
                if i == at {
                    s.position(start, &mut out);
                }
                verdict = match item {
                    Item::Msg(seq) => s.message(seq, Item::Msg(seq), &mut out),
                    Item::Edit(seq) => s.following(seq, Item::Edit(seq), &mut out),
                };
                // Sometimes the fill runs while messages are still in flight.
                if let Verdict::Gap { after } = verdict
                    && rng.below(4) == 0
                {
                    let upto = (after + 1 + rng.below(3) as i64).min(end);
                    verdict = s.fill(((after + 1)..=upto).map(|q| (q, Item::Msg(q))), &mut out);
                }
            }
            if s.delivered().is_none() {
                verdict = s.position(start, &mut out);
            }
            // Tail loss: the last message(s) never came. Heartbeats reveal it; the caller
            // fills up to the database's last seq.
            if s.delivered() != Some(end) || !matches!(verdict, Verdict::InOrder) {
                let after = s.delivered().unwrap();
                verdict = s.fill(((after + 1)..=end).map(|q| (q, Item::Msg(q))), &mut out);
            }
            assert_eq!(verdict, Verdict::InOrder, "seed {seed}");
            assert!(!s.is_waiting(), "seed {seed}");
            check(&out, start, end);
        }
    }
}
