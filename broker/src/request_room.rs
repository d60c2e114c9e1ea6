//! One core's share of `queued.max.request.bytes`: the bytes of requests
//! read and not yet answered. When the room is short, it goes first to the
//! waiting connection that holds the least of it (then to the one that
//! asked first), not to whoever asked first: a client that pipelines many
//! large requests cannot make a light one wait behind all of its bytes
//! (max-min fairness over connections). A waiter's place follows what its
//! connection holds now (it moves up as the connection's answers give room
//! back), and the head of the order is served before anyone behind it, so
//! no wait is passed for ever. Single-threaded (one
//! core), no I/O: `Rc`, `Cell`, wakers.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

pub struct RequestRoom {
    size: u64,
    free: Cell<u64>,
    next_seq: Cell<u64>,
    /// (bytes the connection held when it asked, arrival) -> the waiter.
    waiters: RefCell<BTreeMap<(u64, u64), Rc<Slot>>>,
}

/// What one connection holds of the room (shared by its permits), and the
/// place of its one pending wait (a connection reads one request at a time).
#[derive(Default)]
pub struct Held {
    bytes: Cell<u64>,
    waiting: Cell<Option<(u64, u64)>>,
}

impl Held {
    pub fn bytes(&self) -> u64 {
        self.bytes.get()
    }
}

struct Slot {
    units: u64,
    held: Rc<Held>,
    granted: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

/// Room for one request; given back (to the room and to the
/// connection's `Held`) when dropped.
pub struct RoomPermit {
    room: Rc<RequestRoom>,
    held: Rc<Held>,
    units: u64,
}

impl Drop for RoomPermit {
    fn drop(&mut self) {
        self.held.bytes.set(self.held.bytes() - self.units);
        // The connection's pending wait moves up with what it holds now.
        if let Some(old) = self.held.waiting.get() {
            let new = (self.held.bytes(), old.1);
            let mut waiters = self.room.waiters.borrow_mut();
            if let Some(slot) = waiters.remove(&old) {
                waiters.insert(new, slot);
                self.held.waiting.set(Some(new));
            }
        }
        self.room.give_back(self.units);
    }
}

impl RequestRoom {
    pub fn new(size: u64) -> Rc<RequestRoom> {
        Rc::new(RequestRoom {
            size: size.max(1),
            free: Cell::new(size.max(1)),
            next_seq: Cell::new(0),
            waiters: RefCell::new(BTreeMap::new()),
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Waits for room for a request of `len` bytes of the connection that
    /// holds `held` (a request larger than the whole room takes all of it).
    pub fn acquire(self: &Rc<Self>, len: usize, held: &Rc<Held>) -> Acquire {
        let units = (len as u64).clamp(1, self.size);
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        let key = (held.bytes(), seq);
        let slot = Rc::new(Slot {
            units,
            held: held.clone(),
            granted: Cell::new(false),
            waker: RefCell::new(None),
        });
        held.waiting.set(Some(key));
        self.waiters.borrow_mut().insert(key, slot.clone());
        self.grant();
        Acquire {
            room: self.clone(),
            held: held.clone(),
            slot,
            done: false,
        }
    }

    fn give_back(&self, units: u64) {
        self.free.set(self.free.get() + units);
        self.grant();
    }

    /// Grants waiters in order while the first one fits; wakes them once
    /// the queue is no longer borrowed.
    fn grant(&self) {
        let mut woken = Vec::new();
        {
            let mut waiters = self.waiters.borrow_mut();
            while let Some(entry) = waiters.first_entry() {
                let units = entry.get().units;
                if units > self.free.get() {
                    break;
                }
                self.free.set(self.free.get() - units);
                let slot = entry.remove();
                slot.granted.set(true);
                slot.held.waiting.set(None);
                woken.extend(slot.waker.borrow_mut().take());
            }
        }
        for waker in woken {
            waker.wake();
        }
    }
}

/// The wait for room ([`RequestRoom::acquire`]).
pub struct Acquire {
    room: Rc<RequestRoom>,
    held: Rc<Held>,
    slot: Rc<Slot>,
    done: bool,
}

impl Future for Acquire {
    type Output = RoomPermit;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<RoomPermit> {
        if self.done || !self.slot.granted.get() {
            *self.slot.waker.borrow_mut() = Some(cx.waker().clone());
            return Poll::Pending;
        }
        self.done = true;
        let units = self.slot.units;
        self.held.bytes.set(self.held.bytes() + units);
        Poll::Ready(RoomPermit {
            room: self.room.clone(),
            held: self.held.clone(),
            units,
        })
    }
}

impl Drop for Acquire {
    /// A wait given up (its connection closed): out of the queue, or, if
    /// the room was granted and never taken, given back.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.slot.granted.get() {
            self.room.give_back(self.slot.units);
        } else {
            if let Some(key) = self.held.waiting.take() {
                self.room.waiters.borrow_mut().remove(&key);
            }
            // It may have been the head that kept smaller ones waiting.
            self.room.grant();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::poll_once;

    fn ready(wait: &mut Acquire) -> Option<RoomPermit> {
        futures_lite::future::block_on(poll_once(wait))
    }

    #[test]
    fn room_goes_first_to_the_connection_holding_the_least() {
        let room = RequestRoom::new(10);
        let (heavy, light) = (Rc::new(Held::default()), Rc::new(Held::default()));
        let first = ready(&mut room.acquire(6, &heavy)).expect("fits");
        let second = ready(&mut room.acquire(4, &heavy)).expect("fits");
        assert_eq!((heavy.bytes(), room.free.get()), (10, 0));
        // The heavy connection asks again first, then the light one.
        let mut heavy_wait = room.acquire(5, &heavy);
        let mut light_wait = room.acquire(5, &light);
        assert!(ready(&mut heavy_wait).is_none() && ready(&mut light_wait).is_none());
        drop(first);
        let light_permit = ready(&mut light_wait).expect("the light one first");
        assert!(ready(&mut heavy_wait).is_none(), "then the heavy one");
        assert_eq!((heavy.bytes(), light.bytes()), (4, 5));
        drop(second);
        drop(light_permit);
        let heavy_permit = ready(&mut heavy_wait).expect("now");
        drop(heavy_permit);
        assert_eq!((heavy.bytes(), light.bytes(), room.free.get()), (0, 0, 10));
    }

    #[test]
    fn a_wait_moves_up_as_its_connection_gives_room_back() {
        let room = RequestRoom::new(10);
        let (heavy, light) = (Rc::new(Held::default()), Rc::new(Held::default()));
        let held = ready(&mut room.acquire(6, &heavy)).expect("fits");
        let other = ready(&mut room.acquire(4, &light)).expect("fits");
        // The heavy connection asks holding 6, then its answer gives the 6
        // back: its wait now ranks as holding 0, ahead of a later one.
        let mut heavy_wait = room.acquire(8, &heavy);
        drop(held);
        assert!(ready(&mut heavy_wait).is_none(), "6 free, 8 needed");
        let mut later = room.acquire(1, &Rc::new(Held::default()));
        assert!(
            ready(&mut later).is_none(),
            "behind the older wait, which holds nothing now"
        );
        drop(other);
        let _first = ready(&mut heavy_wait).expect("granted");
        let _then = ready(&mut later).expect("then the later one");
    }

    #[test]
    fn equals_are_served_in_arrival_order_and_the_head_is_never_passed() {
        let room = RequestRoom::new(10);
        let (a, b, c) = (
            Rc::new(Held::default()),
            Rc::new(Held::default()),
            Rc::new(Held::default()),
        );
        let all = ready(&mut room.acquire(10, &a)).expect("fits");
        let mut big = room.acquire(9, &b);
        let mut small = room.acquire(2, &c);
        drop(all);
        let _big = ready(&mut big).expect("first come among equals");
        // 1 byte left: the small one waits; nothing passes a head that
        // does not fit.
        assert!(ready(&mut small).is_none());
    }

    #[test]
    fn a_wait_given_up_leaves_the_queue_and_returns_what_it_was_granted() {
        let room = RequestRoom::new(10);
        // One pending wait per connection, as a connection reads one
        // request at a time.
        let (a, b, c) = (
            Rc::new(Held::default()),
            Rc::new(Held::default()),
            Rc::new(Held::default()),
        );
        let all = ready(&mut room.acquire(10, &a)).expect("fits");
        let head = room.acquire(8, &b);
        let mut behind = room.acquire(3, &c);
        drop(all);
        // `head` was granted 8 and never polled: dropping it gives them back.
        drop(head);
        let permit = ready(&mut behind).expect("granted once the head left");
        assert_eq!((b.bytes(), c.bytes(), room.free.get()), (0, 3, 7));
        drop(permit);
        // A pending head given up lets the ones behind it through.
        let half = ready(&mut room.acquire(5, &a)).expect("fits");
        let blocked = room.acquire(10, &b);
        let mut small = room.acquire(1, &c);
        assert!(
            ready(&mut small).is_none(),
            "behind a head that does not fit"
        );
        drop(blocked);
        let _small = ready(&mut small).expect("the head left");
        drop(half);
        // Requests larger than the room take all of it.
        let mut huge = room.acquire(1 << 40, &a);
        assert!(ready(&mut huge).is_none(), "1 byte is held");
    }
}
