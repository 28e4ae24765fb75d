//! Live `poll.updated` / `survey.updated` events, coalesced: the first change of a poll starts a
//! short window; changes inside it ride along, and one event with the state at the window's end
//! goes out. A vote storm costs a few events per second per poll, whatever the vote rate.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::{poll_service, survey_service};
use crate::state::AppState;

/// How long changes gather before one event carries them.
const WINDOW: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    Poll(Uuid),
    Survey(Uuid),
}

#[derive(Debug)]
pub struct Live {
    pending: Arc<Mutex<HashSet<Subject>>>,
    /// The app's tracker, so shutdown waits for (or cancels) a pending publish.
    tasks: TaskTracker,
}

impl Live {
    pub fn new(tasks: TaskTracker) -> Self {
        Self {
            pending: Arc::default(),
            tasks,
        }
    }

    /// Schedules an event for the subject unless one is already due.
    pub fn touch(&self, state: &AppState, subject: Subject) {
        if !self.pending.lock().unwrap().insert(subject) {
            return;
        }
        let pending = self.pending.clone();
        let state = state.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(WINDOW) => {}
                () = state.shutdown.cancelled() => return,
            }
            // Removed before reading, so a change committed after the read schedules another.
            pending.lock().unwrap().remove(&subject);
            let outcome = match subject {
                Subject::Poll(id) => poll_service::publish_update(&state, id).await,
                Subject::Survey(id) => survey_service::publish_update(&state, id).await,
            };
            if let Err(err) = outcome {
                tracing::warn!(error = %err, ?subject, "live update not published");
            }
        });
    }
}
