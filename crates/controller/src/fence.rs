//! The write fence: every write the leader makes (Secrets, statuses, events, keys, recipients)
//! first asks the fence whether this replica may still act as the leader.
//!
//! Leadership is fenced by time, as client-go's leader election is: a leader that has not
//! renewed its Lease within the renew deadline (shorter than the lease duration) stops writing,
//! measured on the monotonic clock from the moment its last successful renewal was *sent*.
//! A standby may take the Lease only after it has watched the Lease unchanged for a whole lease
//! duration, so by then the old leader has already stopped. Checking before each write (rather
//! than only stopping the leader's tasks) also covers a process that was paused (SIGSTOP, a
//! long GC-like stall): when it resumes, the clock has moved on and its next write is refused
//! before any task has had a chance to notice.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fenced {
    #[error("not the leader (this replica holds no Lease): write refused")]
    NotLeading,
    #[error(
        "leadership lapsed: no Lease renewal for {since:?}, past the renew deadline of {deadline:?} \
         (--lease-renew-deadline); write refused until this replica holds the Lease again"
    )]
    Lapsed { since: Duration, deadline: Duration },
}

/// Whether a leader that last renewed at `renewed` (when the renewal was sent) may still
/// write at `now`.
pub fn may_write(renewed: Instant, now: Instant, deadline: Duration) -> Result<(), Fenced> {
    let since = now.saturating_duration_since(renewed);
    if since < deadline {
        Ok(())
    } else {
        Err(Fenced::Lapsed { since, deadline })
    }
}

#[derive(Debug, Clone)]
enum Mode {
    /// No leader election (`--leader-elect=false`, `rotate`): this process is the only writer.
    Unfenced,
    /// Leader election: writes only within the renew deadline of the last renewal.
    Elected {
        renewed: Arc<Mutex<Option<Instant>>>,
        deadline: Duration,
    },
}

/// Shared by the elector (which records renewals) and every writer (which checks).
#[derive(Debug, Clone)]
pub struct Fence {
    mode: Mode,
}

impl Fence {
    pub fn unfenced() -> Fence {
        Fence {
            mode: Mode::Unfenced,
        }
    }

    /// A fence that is closed until the first renewal.
    pub fn elected(deadline: Duration) -> Fence {
        Fence {
            mode: Mode::Elected {
                renewed: Arc::default(),
                deadline,
            },
        }
    }

    /// Ok if this replica may write now.
    pub fn check(&self) -> Result<(), Fenced> {
        match &self.mode {
            Mode::Unfenced => Ok(()),
            Mode::Elected { renewed, deadline } => match *renewed.lock().expect("fence lock") {
                Some(at) => may_write(at, Instant::now(), *deadline),
                None => Err(Fenced::NotLeading),
            },
        }
    }

    /// When the fence closes by itself (None: closed already, or never closes).
    pub fn closes_at(&self) -> Option<Instant> {
        match &self.mode {
            Mode::Unfenced => None,
            Mode::Elected { renewed, deadline } => {
                renewed.lock().expect("fence lock").map(|at| at + *deadline)
            }
        }
    }

    /// A renewal sent at `sent` succeeded.
    pub fn renewed(&self, sent: Instant) {
        if let Mode::Elected { renewed, .. } = &self.mode {
            let mut r = renewed.lock().expect("fence lock");
            // Never move backwards: an older renewal answering late proves nothing newer.
            if r.is_none_or(|at| at < sent) {
                *r = Some(sent);
            }
        }
    }

    /// Leadership is gone (another holder, or released): close at once.
    pub fn close(&self) {
        if let Mode::Elected { renewed, .. } = &self.mode {
            *renewed.lock().expect("fence lock") = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINE: Duration = Duration::from_secs(10);

    #[test]
    fn writes_stop_at_the_renew_deadline() {
        let t0 = Instant::now();
        assert_eq!(may_write(t0, t0, DEADLINE), Ok(()));
        assert_eq!(
            may_write(t0, t0 + Duration::from_millis(9_999), DEADLINE),
            Ok(())
        );
        assert_eq!(
            may_write(t0, t0 + DEADLINE, DEADLINE),
            Err(Fenced::Lapsed {
                since: DEADLINE,
                deadline: DEADLINE
            })
        );
        // A paused process resuming 25 s later is refused.
        assert!(may_write(t0, t0 + Duration::from_secs(25), DEADLINE).is_err());
    }

    #[test]
    fn an_elected_fence_is_closed_until_renewed_and_after_close() {
        let fence = Fence::elected(DEADLINE);
        assert_eq!(fence.check(), Err(Fenced::NotLeading));
        assert_eq!(fence.closes_at(), None);
        let sent = Instant::now();
        fence.renewed(sent);
        assert_eq!(fence.check(), Ok(()));
        assert_eq!(fence.closes_at(), Some(sent + DEADLINE));
        // A late answer to an older renewal does not move the deadline back.
        fence.renewed(sent - Duration::from_secs(5));
        assert_eq!(fence.closes_at(), Some(sent + DEADLINE));
        fence.close();
        assert_eq!(fence.check(), Err(Fenced::NotLeading));
    }

    #[test]
    fn a_renewal_older_than_the_deadline_is_refused() {
        let fence = Fence::elected(DEADLINE);
        fence.renewed(Instant::now() - DEADLINE - Duration::from_millis(1));
        assert!(matches!(fence.check(), Err(Fenced::Lapsed { .. })));
        assert!(Fence::unfenced().check().is_ok());
    }
}
