//! Who gets one of the scheduler's connection places.
//!
//! A connection is *anonymous* until one of its requests carries the
//! cluster's token or a page session; then it is *trusted*. Anonymous
//! connections from one address share a budget (`max_per_peer`), and when
//! it is full a new one takes the place of that address's oldest anonymous
//! connection, which is closed. When all places are taken, a new connection
//! takes the place of the oldest anonymous one anywhere. Trusted
//! connections are never closed to make room.
//!
//! So another user on a shared login node, holding a thousand idle
//! connections from the address our CLI and workers also use, delays our
//! next connection by nothing: it takes the place of their oldest one,
//! and once it has shown the token nothing they open can close it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// How many connections may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Budget {
    /// In all.
    pub total: usize,
    /// Anonymous ones from one address.
    pub anonymous_per_peer: usize,
}

/// Why a connection was turned away: every place holds a trusted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct AllTrusted;

#[derive(Default)]
struct Books {
    total: usize,
    next: u64,
    /// Every anonymous connection, oldest first, with how to close it.
    anonymous: BTreeMap<u64, (IpAddr, Arc<Notify>)>,
    by_peer: HashMap<IpAddr, PeerBooks>,
}

#[derive(Default)]
struct PeerBooks {
    anonymous: BTreeSet<u64>,
    trusted: usize,
}

impl Books {
    /// Forgets anonymous connection `seq` and tells it to close.
    fn evict(&mut self, seq: u64) {
        if let Some((peer, closing)) = self.forget_anonymous(seq) {
            tracing::debug!(%peer, "closing an idle anonymous connection to make room");
            closing.notify_one();
        }
    }

    fn forget_anonymous(&mut self, seq: u64) -> Option<(IpAddr, Arc<Notify>)> {
        let (peer, closing) = self.anonymous.remove(&seq)?;
        self.total -= 1;
        if let Some(p) = self.by_peer.get_mut(&peer) {
            p.anonymous.remove(&seq);
            self.drop_if_empty(peer);
        }
        Some((peer, closing))
    }

    fn drop_if_empty(&mut self, peer: IpAddr) {
        if self
            .by_peer
            .get(&peer)
            .is_some_and(|p| p.anonymous.is_empty() && p.trusted == 0)
        {
            self.by_peer.remove(&peer);
        }
    }
}

/// The places, shared by the listener and every connection.
#[derive(Clone, Default)]
pub(super) struct Admission {
    books: Arc<Mutex<Books>>,
}

impl Admission {
    /// A place for a new anonymous connection from `peer`, made by closing
    /// an older anonymous one when the budget is full.
    pub fn admit(&self, peer: IpAddr, budget: Budget) -> Result<Place, AllTrusted> {
        let mut b = self.books.lock();
        let mine = b.by_peer.get(&peer).map_or(0, |p| p.anonymous.len());
        if mine >= budget.anonymous_per_peer {
            if let Some(oldest) = b.by_peer[&peer].anonymous.first().copied() {
                b.evict(oldest);
            }
        }
        if b.total >= budget.total {
            let Some(oldest) = b.anonymous.keys().next().copied() else {
                return Err(AllTrusted);
            };
            b.evict(oldest);
        }
        let seq = b.next;
        b.next += 1;
        let closing = Arc::new(Notify::new());
        b.anonymous.insert(seq, (peer, closing.clone()));
        b.by_peer.entry(peer).or_default().anonymous.insert(seq);
        b.total += 1;
        Ok(Place {
            books: self.books.clone(),
            peer,
            seq,
            trusted: AtomicBool::new(false),
            closing,
        })
    }

    /// Open connections: (in all, anonymous).
    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let b = self.books.lock();
        (b.total, b.anonymous.len())
    }
}

/// One connection's place; freed when dropped.
pub(super) struct Place {
    books: Arc<Mutex<Books>>,
    peer: IpAddr,
    seq: u64,
    /// Counted as trusted (set under the books' lock).
    trusted: AtomicBool,
    closing: Arc<Notify>,
}

impl Place {
    /// Marks the connection trusted (it showed the token or a session):
    /// it is no longer closed to make room. Cheap after the first time.
    pub fn trust(&self) {
        if self.trusted.load(Ordering::Acquire) {
            return;
        }
        let mut b = self.books.lock();
        // Already closed to make room: it stays closing, and uncounted.
        if b.forget_anonymous(self.seq).is_some() {
            b.total += 1;
            b.by_peer.entry(self.peer).or_default().trusted += 1;
            self.trusted.store(true, Ordering::Release);
        }
    }

    /// Resolves when the connection must close to make room.
    pub async fn closing(&self) {
        self.closing.notified().await;
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut b = self.books.lock();
        if !self.trusted.load(Ordering::Acquire) {
            b.forget_anonymous(self.seq);
            return;
        }
        // Trusted places are only ever counted under their peer.
        if let Some(p) = b.by_peer.get_mut(&self.peer) {
            p.trusted -= 1;
            b.total -= 1;
            b.drop_if_empty(self.peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Budget = Budget {
        total: 4,
        anonymous_per_peer: 2,
    };

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[tokio::test]
    async fn a_full_address_share_closes_its_oldest_anonymous_connection() {
        let a = Admission::default();
        let first = a.admit(ip(1), BUDGET).unwrap();
        let _second = a.admit(ip(1), BUDGET).unwrap();
        let _third = a.admit(ip(1), BUDGET).unwrap();
        // The oldest was told to close, and no longer counts.
        tokio::time::timeout(std::time::Duration::from_secs(1), first.closing())
            .await
            .expect("the oldest anonymous connection is closed");
        assert_eq!(a.counts(), (2, 2));
        drop(first);
        assert_eq!(a.counts(), (2, 2), "a closed place is not freed twice");
    }

    #[test]
    fn trusted_connections_are_never_closed_to_make_room() {
        let a = Admission::default();
        let ours = a.admit(ip(1), BUDGET).unwrap();
        ours.trust();
        ours.trust();
        // A flood from our own address and from others.
        let flood: Vec<Place> = (0..20)
            .filter_map(|i| a.admit(ip(1 + i % 3), BUDGET).ok())
            .collect();
        assert_eq!(flood.len(), 20, "each new one takes an older one's place");
        let (total, anonymous) = a.counts();
        assert_eq!((total, anonymous), (4, 3));
        drop(flood);
        assert_eq!(a.counts(), (1, 0), "our trusted connection stayed");
        drop(ours);
        assert_eq!(a.counts(), (0, 0));
        assert!(a.books.lock().by_peer.is_empty());
    }

    #[test]
    fn when_every_place_is_trusted_a_newcomer_is_refused() {
        let a = Admission::default();
        let trusted: Vec<Place> = (0..4).map(|i| a.admit(ip(i), BUDGET).unwrap()).collect();
        trusted.iter().for_each(Place::trust);
        assert_eq!(a.admit(ip(9), BUDGET).err(), Some(AllTrusted));
        drop(trusted);
        assert!(a.admit(ip(9), BUDGET).is_ok());
    }

    #[test]
    fn a_connection_closed_to_make_room_cannot_come_back_as_trusted() {
        let a = Admission::default();
        let old = a.admit(ip(1), BUDGET).unwrap();
        let _n1 = a.admit(ip(1), BUDGET).unwrap();
        let _n2 = a.admit(ip(1), BUDGET).unwrap(); // closes `old`
        old.trust();
        assert_eq!(a.counts(), (2, 2));
        drop(old);
        assert_eq!(a.counts(), (2, 2));
    }
}
