//! Waiting for Connect import jobs.

use std::time::Duration;

use norce_models::connect::{Job, JobResponse, ValidationSummary};
use tokio::time::Instant;

use crate::client::NorceClient;
use crate::error::{Error, JobFailure};

/// `StatusId` of a job that succeeded.
pub const JOB_SUCCEEDED: i32 = 2;
/// `StatusId` of a job that failed.
pub const JOB_FAILED: i32 = 3;
/// `StatusId` of a job whose validation failed.
pub const JOB_VALIDATION_FAILED: i32 = 4;

/// How [`NorceClient::wait_for_job`] polls.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WaitOptions {
    /// Give up after this long (default 10 min).
    pub timeout: Duration,
    /// First delay between polls (default 1 s).
    pub initial_interval: Duration,
    /// Longest delay between polls (default 30 s).
    pub max_interval: Duration,
    /// Factor applied to the delay after each poll (default 2).
    pub multiplier: f64,
}

impl Default for WaitOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(600),
            initial_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(30),
            multiplier: 2.0,
        }
    }
}

impl WaitOptions {
    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the first and the longest delay.
    pub fn intervals(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_interval = initial;
        self.max_interval = max.max(initial);
        self
    }
}

fn is_finished(job: &Job) -> bool {
    job.is_finished == Some(true)
        || matches!(
            job.status_id,
            JOB_SUCCEEDED | JOB_FAILED | JOB_VALIDATION_FAILED
        )
}

impl NorceClient {
    /// Polls `Job/Get` with exponential backoff until the job finishes. Succeeded (2) returns
    /// the job; Failed (3) or Validation failed (4) returns [`Error::JobFailed`] with the job
    /// log; no end within `options.timeout` returns [`Error::JobTimeout`].
    pub async fn wait_for_job(&self, job_id: i32, options: &WaitOptions) -> Result<Job, Error> {
        self.wait(job_id, None, options).await
    }

    /// [`Self::wait_for_job`] for the job of an import's answer; a failure also carries the
    /// answer's `ValidationSummary`.
    pub async fn wait_for_import(
        &self,
        response: &JobResponse,
        options: &WaitOptions,
    ) -> Result<Job, Error> {
        let job_id = response
            .job_id
            .trim()
            .parse::<i32>()
            .map_err(|_| Error::InvalidResponse {
                operation: "GetJob",
                reason: format!("JobId `{}` is not a number", response.job_id),
            })?;
        self.wait(job_id, response.validation_summary.clone(), options)
            .await
    }

    async fn wait(
        &self,
        job_id: i32,
        validation_summary: Option<ValidationSummary>,
        options: &WaitOptions,
    ) -> Result<Job, Error> {
        let started = Instant::now();
        let deadline = started + options.timeout;
        let mut interval = options.initial_interval;
        loop {
            let job = self.get_job(job_id).await?;
            if is_finished(&job) {
                if job.status_id == JOB_SUCCEEDED {
                    tracing::info!(target: "norce_client", job_id, "job succeeded");
                    return Ok(job);
                }
                let log = match self.get_job_log(job_id).await {
                    Ok(log) => log,
                    Err(e) => {
                        tracing::warn!(target: "norce_client", job_id, error = %e, "cannot read the job log");
                        Vec::new()
                    }
                };
                return Err(Error::JobFailed(Box::new(JobFailure {
                    job,
                    validation_summary,
                    log,
                })));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::JobTimeout {
                    job_id,
                    waited: now - started,
                    last_status: Some(job.status_id),
                });
            }
            let sleep = interval.min(deadline - now);
            tracing::debug!(target: "norce_client", job_id, status = job.status_id, sleep_ms = sleep.as_millis() as u64, "job not finished");
            tokio::time::sleep(sleep).await;
            interval = interval
                .mul_f64(options.multiplier.max(1.0))
                .min(options.max_interval);
        }
    }
}
