//! Errors by kind, and retries per item. A call to Gitea or Buildbot fails
//! either *transiently* (unreachable, a 5xx, Gitea's 429: trying again
//! later may work) or *permanently* (any other 4xx: an archived repository
//! answers 423, a deleted pull request or a purged build 404, a token
//! without the right 403). Each piece of work the bridge retries (a build's
//! follow, report or stop, a commit status, a claimed comment) is an
//! *item* with its own retry record ([`crate::state::Retry`]): transient
//! failures are retried with backoff for as long as they last; a
//! permanent one is retried [`GIVE_UP_AFTER`] times, then the item is
//! given up into the dead letters that `GET /status` lists with the
//! reason. One item's failure never holds back another's.

use std::time::Duration;

use crate::buildbot::BuildbotError;
use crate::gitea::GiteaError;
use crate::state::StateError;

/// Whether a failure may pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Trying again later may work (unreachable, 5xx, 429, the state
    /// database busy).
    Transient,
    /// Trying again will not help (a refusal: 4xx, a malformed answer).
    Permanent,
}

impl Kind {
    /// `transient` or `permanent`, as the log and `/status` say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Transient => "transient",
            Kind::Permanent => "permanent",
        }
    }
}

/// A call the bridge made that failed, with its kind kept.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Gitea's API.
    #[error(transparent)]
    Gitea(#[from] GiteaError),
    /// Buildbot's API.
    #[error(transparent)]
    Buildbot(#[from] BuildbotError),
    /// The bridge's own state database.
    #[error(transparent)]
    State(#[from] StateError),
}

impl CallError {
    /// Its kind: Gitea's and Buildbot's own classification
    /// ([`GiteaError::retryable`], [`BuildbotError::retryable`]); the state
    /// database's errors are transient (a busy or full disk passes; a
    /// broken file stops the bridge at start).
    pub fn kind(&self) -> Kind {
        let retryable = match self {
            CallError::Gitea(e) => e.retryable(),
            CallError::Buildbot(e) => e.retryable(),
            CallError::State(_) => true,
        };
        if retryable {
            Kind::Transient
        } else {
            Kind::Permanent
        }
    }
}

/// Permanent failures of one item before it is given up.
pub const GIVE_UP_AFTER: u32 = 4;

/// Backoff of one item's retries: 2 s doubling per failure, at most a
/// minute (a Gitea back after an outage gets every report within a minute).
pub const BACKOFF: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(60));

/// What to do after an item's failure.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Try again no sooner than this many seconds from now.
    RetryIn(Duration),
    /// Give it up (a dead letter), with the reason.
    GiveUp(String),
}

/// The rule: the `failures`-th failure in a row (1 for the first) of an
/// item, `refusals` of which (this one included) were permanent, is
/// retried after `BACKOFF` doubled per earlier failure, unless `refusals`
/// reached [`GIVE_UP_AFTER`].
pub fn next(kind: Kind, failures: u32, refusals: u32, error: &str) -> Next {
    if kind == Kind::Permanent && refusals >= GIVE_UP_AFTER {
        return Next::GiveUp(format!("refused {refusals} times, last: {error}"));
    }
    Next::RetryIn(crate::bridge::backoff(BACKOFF.0, failures.saturating_sub(1), BACKOFF.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_are_retried_with_growing_waits_and_never_given_up() {
        let waits: Vec<_> = (1..=12)
            .map(|n| match next(Kind::Transient, n, 0, "503") {
                Next::RetryIn(d) => d.as_secs(),
                Next::GiveUp(w) => panic!("gave up a transient failure: {w}"),
            })
            .collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60, 60, 60, 60, 60, 60]);
    }

    #[test]
    fn a_permanent_failure_is_given_up_after_the_bound_with_its_reason() {
        for n in 1..GIVE_UP_AFTER {
            assert!(matches!(next(Kind::Permanent, n, n, "423 Locked"), Next::RetryIn(_)));
        }
        match next(Kind::Permanent, GIVE_UP_AFTER + 3, GIVE_UP_AFTER, "423 Locked") {
            Next::GiveUp(why) => assert!(why.contains("423 Locked") && why.contains("4 times"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn error_kinds_follow_the_status_codes() {
        let gitea = |status| {
            CallError::Gitea(GiteaError::Status {
                method: "POST",
                url: "u".into(),
                status,
                body: String::new(),
            })
        };
        for (status, kind) in [
            (403, Kind::Permanent),
            (404, Kind::Permanent),
            (423, Kind::Permanent),
            (422, Kind::Permanent),
            (429, Kind::Transient),
        ] {
            assert_eq!(gitea(status).kind(), kind, "Gitea {status}");
        }
        let away = CallError::Gitea(GiteaError::Unreachable {
            url: "u".into(),
            detail: "502".into(),
        });
        assert_eq!(away.kind(), Kind::Transient);
        let refused = CallError::Buildbot(BuildbotError::Refused {
            what: "GET x".into(),
            detail: "404".into(),
        });
        assert_eq!(refused.kind(), Kind::Permanent);
    }
}
