//! The round loop over a run directory, shared by the simulation and the network server:
//! resume from the latest good checkpoint, then for each round run it, append its metrics,
//! checkpoint the global model and server state, and hand the result to the caller (which
//! saves its model file, shows progress, or stops early).

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use fedser_core::ParamSet;

use crate::run_dir::{Checkpoint, RunDir, RunDirError};
use crate::server::{CentralEval, Executor, RoundRecord, Server};
use crate::strategy::Strategy;

/// Why the loop stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    #[error("round {round}: {reason}")]
    Round { round: u32, reason: String },
    #[error("{path}: the checkpoint does not fit the model: {reason}")]
    Layout { path: String, reason: String },
}

/// Restores `server` from the run directory's latest good checkpoint (if any) and cuts
/// `metrics.jsonl` back to it. Returns the checkpoint's extra state and the first round
/// still to run.
pub fn resume<S: Strategy>(
    run: &RunDir,
    server: &mut Server<S>,
) -> Result<(u32, BTreeMap<String, String>), DriverError> {
    let mut first = 1;
    let mut extra = BTreeMap::new();
    if let Some(cp) = run.latest_checkpoint()? {
        server
            .global
            .check_same_layout(&cp.global)
            .map_err(|e| DriverError::Layout {
                path: run.path().display().to_string(),
                reason: e.to_string(),
            })?;
        server.global = cp.global;
        server.strategy.restore(cp.server);
        server
            .pipeline
            .restore(&cp.extra)
            .map_err(|reason| DriverError::Layout {
                path: run.path().display().to_string(),
                reason,
            })?;
        first = cp.round + 1;
        extra = cp.extra;
    }
    run.truncate_metrics(first - 1)?;
    Ok((first, extra))
}

/// What the caller does after each round.
pub trait RoundHook {
    /// State of other stages to keep in the round's checkpoint (e.g. an accountant).
    fn extra_state(&mut self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
    /// Called once the round is recorded and checkpointed; `Break` stops the loop.
    fn after_round(
        &mut self,
        record: &RoundRecord,
        global: &ParamSet,
    ) -> Result<ControlFlow<()>, String>;
}

/// How a loop of rounds ended.
#[derive(Debug, Default)]
pub struct Driven {
    /// The rounds run.
    pub records: Vec<RoundRecord>,
    /// Why the loop stopped before its last round, when a stage refused one (e.g. the
    /// privacy budget); recorded in `events.jsonl` too.
    pub refused: Option<String>,
}

/// Runs rounds `first..=last`, recording and checkpointing each (the server pipeline's state
/// included); stops early when the hook asks or a pipeline stage refuses the next round.
pub fn drive<S: Strategy>(
    run: &RunDir,
    server: &mut Server<S>,
    rounds: std::ops::RangeInclusive<u32>,
    executor: &mut dyn Executor,
    mut central: Option<&mut CentralEval<'_>>,
    hook: &mut dyn RoundHook,
) -> Result<Driven, DriverError> {
    let mut records = Vec::new();
    for round in rounds {
        if let Err(reason) = server.pipeline.admit(round) {
            let reason = format!("stopped before round {round}: {reason}");
            tracing::warn!("{reason}");
            run.record_event(
                "refused",
                serde_json::json!({"round": round, "reason": reason}),
            )?;
            return Ok(Driven {
                records,
                refused: Some(reason),
            });
        }
        let record = server
            .run_round(round, executor, central.as_deref_mut())
            .map_err(|reason| DriverError::Round { round, reason })?;
        run.append_metrics(&record)?;
        let mut extra = hook.extra_state();
        extra.extend(server.pipeline.state());
        run.save_checkpoint(&Checkpoint {
            round,
            global: server.global.clone(),
            server: server.strategy.state(),
            extra,
        })?;
        let flow = hook
            .after_round(&record, &server.global)
            .map_err(|reason| DriverError::Round { round, reason })?;
        records.push(record);
        if flow.is_break() {
            break;
        }
    }
    Ok(Driven {
        records,
        refused: None,
    })
}
