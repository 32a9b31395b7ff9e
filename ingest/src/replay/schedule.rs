//! When the replay runs by itself, inside `autorma ingest`: at the times of a cron expression
//! in a time zone (default `0 2 * * *`, 2 AM), and after a promotion of the alias.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

use super::job::ReplayJob;

#[derive(Debug, Clone)]
pub struct ReplaySchedule {
    expression: String,
    cron: Cron,
    tz: Tz,
}

impl ReplaySchedule {
    /// `expression`: five fields (minute hour day-of-month month day-of-week); `tz`: an IANA
    /// time zone name (`UTC`, `Europe/Berlin`).
    pub fn parse(expression: &str, tz: &str) -> Result<Self, String> {
        let cron = Cron::from_str(expression)
            .map_err(|e| format!("`{expression}` is not a cron expression (e.g. `0 2 * * *`): {e}"))?;
        let tz =
            Tz::from_str(tz).map_err(|_| format!("`{tz}` is not a time zone name (e.g. `UTC`, `Europe/Berlin`)"))?;
        Ok(Self { expression: expression.to_string(), cron, tz })
    }

    /// The first time after `now` the expression names, in the schedule's time zone.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&now.with_timezone(&self.tz), false).ok().map(|t| t.with_timezone(&Utc))
    }
}

impl std::fmt::Display for ReplaySchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` ({})", self.expression, self.tz)
    }
}

/// What started a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayTrigger {
    Schedule,
    Promotion { from: u32, to: u32 },
}

/// Runs `job` on `schedule` and, when `promotion_poll` is set, after each change of the alias
/// (looked at that often), until `shutdown`. A failed replay is logged; the next trigger runs
/// it again. No wait for the workers' swap is needed: each replayed photo names the version it
/// is for, and a worker not serving it yet looks at its alias at once.
pub async fn run_replay_schedule(
    job: ReplayJob,
    schedule: Option<ReplaySchedule>,
    promotion_poll: Option<Duration>,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut seen = match job.registry.alias(&job.alias).await {
        Ok(alias) => alias.map(|a| a.version),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the alias yet");
            None
        }
    };
    if let Some(schedule) = &schedule {
        tracing::info!(%schedule, next = ?schedule.next_after(Utc::now()), "replay scheduled");
    }
    loop {
        let next_run = schedule.as_ref().and_then(|s| s.next_after(Utc::now()));
        let until_run = next_run.map_or(Duration::MAX, |t| (t - Utc::now()).to_std().unwrap_or_default());
        let poll = promotion_poll.unwrap_or(Duration::MAX);
        let trigger = tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(until_run.min(poll)) => {
                if next_run.is_some_and(|t| t <= Utc::now()) {
                    Some(ReplayTrigger::Schedule)
                } else {
                    promoted(&job, &mut seen).await
                }
            }
        };
        let Some(trigger) = trigger else { continue };
        tracing::info!(?trigger, "replay starting");
        if let Err(e) = job.run(|_, _| {}).await {
            tracing::error!(?trigger, error = %e, "replay failed; the next trigger runs it again");
        }
    }
}

/// A change of the alias since `seen` (which it updates).
async fn promoted(job: &ReplayJob, seen: &mut Option<u32>) -> Option<ReplayTrigger> {
    let now = match job.registry.alias(&job.alias).await {
        Ok(alias) => alias.map(|a| a.version),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the alias; looking again at the next poll");
            return None;
        }
    };
    let trigger = match (*seen, now) {
        (Some(from), Some(to)) if from != to => Some(ReplayTrigger::Promotion { from, to }),
        _ => None,
    };
    *seen = now.or(*seen);
    trigger
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn two_am_is_two_am_in_the_schedules_time_zone() {
        let utc_schedule = ReplaySchedule::parse("0 2 * * *", "UTC").unwrap();
        assert_eq!(utc_schedule.next_after(utc("2026-11-27T14:00:00Z")), Some(utc("2026-11-28T02:00:00Z")));
        // Berlin is UTC+1 in November, UTC+2 in July.
        let berlin = ReplaySchedule::parse("0 2 * * *", "Europe/Berlin").unwrap();
        assert_eq!(berlin.next_after(utc("2026-11-27T14:00:00Z")), Some(utc("2026-11-28T01:00:00Z")));
        assert_eq!(berlin.next_after(utc("2026-07-01T14:00:00Z")), Some(utc("2026-07-02T00:00:00Z")));
    }

    #[test]
    fn bad_expressions_and_zones_say_what_is_wrong() {
        let err = ReplaySchedule::parse("every night", "UTC").unwrap_err();
        assert!(err.contains("not a cron expression"), "{err}");
        let err = ReplaySchedule::parse("0 2 * * *", "Mars/Olympus").unwrap_err();
        assert!(err.contains("not a time zone"), "{err}");
    }
}
