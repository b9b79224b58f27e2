//! Waiting for Connect import jobs.

use std::time::Duration;

use norce_models::connect::operations::ConnectApi;
use norce_models::connect::{
    GetJobLogQuery, GetJobQuery, Job, JobLogAnswer, JobLogEntry, JobResponse, ValidationSummary,
};
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
    setters! {
        /// Sets the timeout.
        timeout(Duration) => timeout = timeout;
    }

    /// Sets the first and the longest delay.
    pub fn intervals(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_interval = initial;
        self.max_interval = max.max(initial);
        self
    }
}

impl NorceClient {
    /// An import job's log (`Job/GetLog`), oldest first. Norce's published sample answers a
    /// single entry rather than a list; both are read as a list.
    pub async fn get_job_log(&self, id: i32) -> Result<Vec<JobLogEntry>, Error> {
        let answer = ConnectApi::get_job_log(self, &GetJobLogQuery { id }).await?;
        Ok(match answer {
            JobLogAnswer::JobLog(entries) => entries,
            JobLogAnswer::JobLogEntry(entry) => vec![entry],
        })
    }

    /// Polls `Job/Get` with exponential backoff until the job finishes: Succeeded (2) returns
    /// the job, Failed (3) or Validation failed (4) [`Error::JobFailed`] with the job log, no
    /// end within `options.timeout` [`Error::JobTimeout`].
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
        let job_id = response.job_id.trim().parse::<i32>().map_err(|_| {
            let reason = format!("JobId `{}` is not a number", response.job_id);
            let operation = "GetJob";
            Error::InvalidResponse { operation, reason }
        })?;
        let summary = response.validation_summary.clone();
        self.wait(job_id, summary, options).await
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
            let job = self.get_job(&GetJobQuery { id: job_id }).await?;
            let ended = [JOB_SUCCEEDED, JOB_FAILED, JOB_VALIDATION_FAILED].contains(&job.status_id);
            if job.status_id == JOB_SUCCEEDED {
                tracing::info!(target: "norce_client", job_id, "job succeeded");
                return Ok(job);
            } else if ended || job.is_finished == Some(true) {
                let log = self.get_job_log(job_id).await.unwrap_or_else(|e| {
                    tracing::warn!(target: "norce_client", job_id, error = %e, "cannot read the job log");
                    Vec::new()
                });
                let failure = JobFailure {
                    job,
                    validation_summary,
                    log,
                };
                return Err(Error::JobFailed(Box::new(failure)));
            }
            let now = Instant::now();
            if now >= deadline {
                let (waited, last_status) = (now - started, Some(job.status_id));
                return Err(Error::JobTimeout {
                    job_id,
                    waited,
                    last_status,
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
