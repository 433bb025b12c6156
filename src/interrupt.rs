//! Stopping a run part-way on request (SIGINT or SIGTERM on the command
//! line, a service's shutdown when embedded) so that the state tables say
//! exactly where it stopped. A kill leaves them truthful too, but vaguely: a
//! phase `running`, and on MySQL a statement the server goes on running
//! after its client is gone. A requested stop instead cancels the statement
//! in flight on the server, records the phase as failed at that statement
//! (or rolls its transaction back), starts nothing new and releases the lock.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// Cancels, from another thread, the statement a connection is running now
/// (PostgreSQL's cancel request, MySQL's `KILL QUERY`, SQLite's interrupt).
pub type Canceller = Arc<dyn Fn() + Send + Sync>;

/// A handle to ask a run to stop; clones share the request.
#[derive(Clone, Default)]
pub struct Interrupt(Arc<Shared>);

#[derive(Default)]
struct Shared {
    /// Why a stop was asked for ("SIGINT"), once it has been.
    reason: Mutex<Option<String>>,
    asked: Condvar,
    run: Mutex<Run>,
    /// Handles of runs started from this one (see `Interrupt::for_run`): a
    /// request reaches them too.
    runs: Mutex<Vec<Weak<Shared>>>,
}

impl std::fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interrupt").field("reason", &self.reason()).finish()
    }
}

/// What a run holding the migration lock is doing.
#[derive(Default)]
struct Run {
    holding: bool,
    canceller: Option<Canceller>,
    in_statement: bool,
    /// The cancel sent for the statements in flight, until it is done.
    cancelling: Option<std::thread::JoinHandle<()>>,
}

/// A poisoned mutex only means another thread panicked while holding it;
/// what it guards here stays consistent.
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Interrupt {
    /// Asks the run to stop, `why` naming the cause in its messages. The
    /// statement in flight, if any, is cancelled on the server. Returns
    /// whether a run holds the migration lock: if not, nothing is being
    /// written and the process may end at once.
    pub fn request(&self, why: &str) -> bool {
        locked(&self.0.reason).get_or_insert_with(|| why.to_string());
        self.0.asked.notify_all();
        let holding = {
            let mut run = locked(&self.0.run);
            // A cancel connects to the server, which may take its connect
            // timeout: on a thread of its own, so that a second signal does
            // not wait for it. The run waits for it once its statements are
            // done (see `InStatement`).
            if let (true, None, Some(cancel)) = (run.in_statement, &run.cancelling, run.canceller.clone()) {
                run.cancelling = std::thread::Builder::new().name("cancel".to_string()).spawn(move || cancel()).ok();
            }
            run.holding
        };
        let runs: Vec<Interrupt> = locked(&self.0.runs).iter().filter_map(Weak::upgrade).map(Interrupt).collect();
        runs.iter().fold(holding, |holding, run| run.request(why) | holding)
    }

    /// A handle of its own for one run started from this one: a request to
    /// this one reaches the run, and what the run holds is its own, so that
    /// runs at once (an embedding service's clones on different state
    /// tables) never overwrite each other's lock holder or canceller.
    pub(crate) fn for_run(&self) -> Interrupt {
        let run = Interrupt::default();
        let mut runs = locked(&self.0.runs);
        runs.retain(|r| r.strong_count() > 0);
        runs.push(Arc::downgrade(&run.0));
        drop(runs);
        // Asked before the run began: it stops before it takes the lock.
        if let Some(why) = self.reason() {
            run.request(&why);
        }
        run
    }

    /// Why a stop was asked for, once it has been.
    pub fn reason(&self) -> Option<String> {
        locked(&self.0.reason).clone()
    }

    /// Sleeps up to `pause`; true, at once, when a stop is asked for.
    pub(crate) fn pause(&self, pause: Duration) -> bool {
        let deadline = Instant::now() + pause;
        let mut reason = locked(&self.0.reason);
        while reason.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            reason = self.0.asked.wait_timeout(reason, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
        true
    }

    /// The run took the migration lock; `canceller` reaches its connection.
    pub(crate) fn hold(&self, canceller: Option<Canceller>) {
        *locked(&self.0.run) = Run { holding: true, canceller, ..Run::default() };
    }

    /// The run released the migration lock.
    pub(crate) fn release(&self) {
        *locked(&self.0.run) = Run::default();
    }

    /// Marks the migration's own statements as in flight until the returned
    /// guard drops: a stop asked for meanwhile cancels them. pygrate's own
    /// bookkeeping between them is left to finish, so that what ran is
    /// recorded.
    pub(crate) fn in_statement(&self) -> InStatement<'_> {
        locked(&self.0.run).in_statement = true;
        InStatement(self)
    }
}

/// See `Interrupt::in_statement`.
pub(crate) struct InStatement<'i>(&'i Interrupt);

impl Drop for InStatement<'_> {
    /// Waits for a cancel sent meanwhile to be done: it reaches whatever the
    /// connection runs when it arrives, and the bookkeeping that follows
    /// must not be what it cancels (MySQL's `KILL QUERY` killed a progress
    /// row, and the resume ran its statement again). A cancel that arrives
    /// at an idle connection is dropped by the server.
    fn drop(&mut self) {
        let cancelling = {
            let mut run = locked(&self.0 .0.run);
            run.in_statement = false;
            run.cancelling.take()
        };
        if let Some(cancelling) = cancelling {
            let _ = cancelling.join();
        }
    }
}

/// Turns SIGINT and SIGTERM into `interrupt.request`, for the command line.
/// A signal while no run holds the migration lock ends the process at once,
/// as does a second signal: the state tables are truthful after any stop,
/// only less precise.
#[cfg(unix)]
pub fn on_signals(interrupt: Interrupt) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use std::io::Write;

    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new().name("signals".to_string()).spawn(move || {
        for signal in signals.forever() {
            let name = if signal == SIGINT { "SIGINT" } else { "SIGTERM" };
            let again = interrupt.reason().is_some();
            let holding = locked(&interrupt.0.run).holding;
            let message = match (again, holding) {
                (true, _) => format!("pygrate: {name} again: stopping at once; `pygrate status` shows where"),
                (false, true) => format!(
                    "pygrate: {name}: cancelling the running statement and stopping; the state tables will say \
                     where (a second signal stops at once)"
                ),
                (false, false) => format!("pygrate: {name}: stopped"),
            };
            // Said before the stop is asked for: the run's own report of it
            // must not come first, or alone when it exits at once.
            let _ = writeln!(std::io::stderr().lock(), "{message}");
            if again || !holding || !interrupt.request(name) {
                std::process::exit(1);
            }
        }
    })?;
    Ok(())
}

/// Signals are a Unix affair; elsewhere a stop is a kill.
#[cfg(not(unix))]
pub fn on_signals(_interrupt: Interrupt) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_request_cancels_only_a_statement_in_flight() {
        let interrupt = Interrupt::default();
        let cancels = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&cancels);
        // Slow, as a cancel that connects to the server is.
        interrupt.hold(Some(Arc::new(move || {
            std::thread::sleep(Duration::from_millis(100));
            counted.fetch_add(1, Ordering::SeqCst);
        })));
        {
            let _in_flight = interrupt.in_statement();
            assert!(interrupt.request("SIGINT"));
        }
        assert_eq!(cancels.load(Ordering::SeqCst), 1, "the cancel is done once the statements are");
        assert!(interrupt.request("SIGTERM"));
        assert_eq!(cancels.load(Ordering::SeqCst), 1, "the bookkeeping after the statement is left alone");
        assert_eq!(interrupt.reason().as_deref(), Some("SIGINT"), "the first cause is kept");
        interrupt.release();
        assert!(!interrupt.request("SIGINT"), "no run holds the lock any more");
    }

    #[test]
    fn a_request_ends_a_pause() {
        let interrupt = Interrupt::default();
        assert!(!interrupt.pause(Duration::from_millis(1)));
        let asker = interrupt.clone();
        let started = Instant::now();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            asker.request("SIGTERM")
        });
        assert!(interrupt.pause(Duration::from_secs(60)));
        assert!(started.elapsed() < Duration::from_secs(30));
        assert!(!thread.join().unwrap());
    }
}
