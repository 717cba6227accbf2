//! The scheduler and executor processes, each with `exact_sum` / `exact_avg`
//! in its function registry.

use std::io::Read;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::utils::default_session_builder;
use ballista_core::JobId;
use ballista_executor::execution_engine::{
    DefaultExecutionEngine, ExecutionEngine, QueryStageExecutor,
};
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::{SchedulerConfig, TaskDistributionPolicy};
use ballista_scheduler::scheduler_process::start_server;
use datafusion::execution::SessionStateBuilder;
use datafusion::physical_plan::{displayable, ExecutionPlan};
use datafusion::prelude::SessionConfig;

use crate::Flags;

/// Prefix of the lines an executor prints on stdout for each task it starts;
/// the driver reads them to show where the stages ran.
pub const TASK_TAG: &str = "@@TASK";

/// A child must not outlive a driver that hangs: past this it exits on its own.
const CHILD_MAX_LIFETIME: Duration = Duration::from_secs(900);

/// Slots per executor. Two executors with two slots each get a share of every
/// stage that has four or more partitions.
pub const EXECUTOR_VCORES: usize = 2;

pub fn run_scheduler(flags: &Flags) -> Result<ExitCode> {
    let port = flags.port("port")?;
    exit_with_parent();
    init_logging();
    let runtime = tokio::runtime::Runtime::new().context("creating the tokio runtime")?;
    runtime.block_on(async move {
        let config = SchedulerConfig {
            bind_host: "127.0.0.1".into(),
            external_host: "127.0.0.1".into(),
            bind_port: port,
            scheduling_policy: TaskSchedulingPolicy::PushStaged,
            // Spread each stage's tasks over both executors rather than
            // filling one executor's slots first.
            task_distribution: TaskDistributionPolicy::RoundRobin,
            // The driver polls /readyz and submits nothing before both
            // executors have registered.
            min_ready_executors: 2,
            // The scheduler plans the client's logical plan, so its sessions
            // must resolve the UDAFs by name.
            override_session_builder: Some(Arc::new(|config: SessionConfig| {
                let mut state = default_session_builder(config)?;
                mavg_datafusion::register_in(&mut state)?;
                Ok(state)
            })),
            ..Default::default()
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}")
            .parse()
            .context("scheduler address")?;
        let cluster = BallistaCluster::new_from_config(&config)
            .await
            .context("creating the in-memory cluster state")?;
        start_server(cluster, addr, Arc::new(config))
            .await
            .with_context(|| format!("scheduler on {addr}"))
    })?;
    Ok(ExitCode::SUCCESS)
}

pub fn run_executor(flags: &Flags) -> Result<ExitCode> {
    let executor_id = flags.get("id")?.to_string();
    let port = flags.port("port")?;
    let grpc_port = flags.port("grpc-port")?;
    let scheduler_port = flags.port("scheduler-port")?;
    let work_dir = flags.get("work-dir")?.to_string();
    exit_with_parent();
    init_logging();

    // Task plans arrive as protobuf and name their UDAFs; the executor resolves
    // those names in this registry when it decodes a task.
    let mut state = SessionStateBuilder::new().with_default_features().build();
    mavg_datafusion::register_in(&mut state).context("registering the UDAFs")?;
    let registry = BallistaFunctionRegistry::from(&state);

    let config = ExecutorProcessConfig {
        executor_id: executor_id.clone(),
        bind_host: "127.0.0.1".into(),
        external_host: Some("127.0.0.1".into()),
        port,
        grpc_port,
        scheduler_host: "127.0.0.1".into(),
        scheduler_port,
        scheduler_connect_timeout_seconds: 30,
        vcores: EXECUTOR_VCORES,
        task_scheduling_policy: TaskSchedulingPolicy::PushStaged,
        work_dir: Some(work_dir),
        override_function_registry: Some(Arc::new(registry)),
        override_execution_engine: Some(Arc::new(ReportingEngine {
            executor_id,
            inner: DefaultExecutionEngine::new(),
        })),
        ..Default::default()
    };
    let runtime = tokio::runtime::Runtime::new().context("creating the tokio runtime")?;
    runtime
        .block_on(start_executor_process(Arc::new(config)))
        .context("executor process")?;
    Ok(ExitCode::SUCCESS)
}

/// The default engine, plus one stdout line per task naming this executor,
/// the job, the stage and the stage's operators.
struct ReportingEngine {
    executor_id: String,
    inner: DefaultExecutionEngine,
}

impl ExecutionEngine for ReportingEngine {
    fn create_query_stage_exec(
        &self,
        job_id: JobId,
        stage_id: usize,
        task_id: usize,
        partitions: Vec<usize>,
        plan: Arc<dyn ExecutionPlan>,
        work_dir: &str,
        config: &SessionConfig,
    ) -> datafusion::error::Result<Arc<dyn QueryStageExecutor>> {
        println!(
            "{TASK_TAG}\t{}\t{job_id}\t{stage_id}\t{task_id}\t{partitions:?}\t{}",
            self.executor_id,
            operators(plan.as_ref())
        );
        self.inner.create_query_stage_exec(
            job_id, stage_id, task_id, partitions, plan, work_dir, config,
        )
    }
}

/// The stage's operators, top first, with the aggregate mode where there is one
/// (it shows whether a stage computes partial states or merges them).
fn operators(plan: &dyn ExecutionPlan) -> String {
    displayable(plan)
        .indent(false)
        .to_string()
        .lines()
        .map(|line| {
            let line = line.trim();
            let name = line.split(':').next().unwrap_or(line);
            let mode = line
                .split([' ', ','])
                .find(|w| w.starts_with("mode="))
                .map(|m| format!(" {m}"))
                .unwrap_or_default();
            let exact = if line.contains("exact_") {
                " [exact_*]"
            } else {
                ""
            };
            format!("{name}{mode}{exact}")
        })
        .collect::<Vec<_>>()
        .join(" <- ")
}

/// Exits when the driver goes away (its end of our stdin closes), however it
/// ended, and in any case after `CHILD_MAX_LIFETIME`.
fn exit_with_parent() {
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
    std::thread::spawn(|| {
        std::thread::sleep(CHILD_MAX_LIFETIME);
        eprintln!("exceeded {CHILD_MAX_LIFETIME:?}, exiting");
        std::process::exit(3);
    });
}

fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
}
