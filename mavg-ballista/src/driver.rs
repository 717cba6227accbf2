//! The driver: starts the cluster as child processes, runs the queries there
//! and in a single-process session, compares, and reports PASS or FAIL.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use ballista::prelude::{SessionConfigExt, SessionContextExt};
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::compare::{Cell, Table};
use crate::data::{self, KNOWN_GROUP, TABLE};
use crate::roles::{EXECUTOR_VCORES, TASK_TAG};

/// Default bound on the whole run; `MAVG_BALLISTA_TIMEOUT_SECS` overrides it.
const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(300);
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const QUERY_TIMEOUT: Duration = Duration::from_secs(120);
/// Both sessions split the table the same way, four partitions.
const TARGET_PARTITIONS: usize = 4;
const EXECUTORS: usize = 2;

const FRAME: &str = "PARTITION BY g ORDER BY t ROWS BETWEEN 3 PRECEDING AND CURRENT ROW";

struct Query {
    label: &'static str,
    sql: String,
    /// Must match bit for bit and run as a multi-stage job on both executors.
    checked: bool,
}

fn queries() -> Vec<Query> {
    vec![
        Query {
            label: "group-by",
            sql: format!(
                "SELECT g, count(*) AS row_count, exact_sum(x) AS sum_x, exact_avg(x) AS avg_x, \
                 exact_sum(n) AS sum_n, exact_avg(n) AS avg_n \
                 FROM {TABLE} GROUP BY g ORDER BY g"
            ),
            checked: true,
        },
        Query {
            label: "window",
            sql: format!(
                "SELECT g, t, exact_avg(x) OVER ({FRAME}) AS wavg_x, \
                 exact_sum(x) OVER ({FRAME}) AS wsum_x, \
                 exact_avg(n) OVER ({FRAME}) AS wavg_n, \
                 exact_sum(n) OVER ({FRAME}) AS wsum_n \
                 FROM {TABLE} ORDER BY g, t"
            ),
            checked: true,
        },
        // For contrast only: the built-in float SUM depends on the order of
        // the additions.
        Query {
            label: "built-in sum",
            sql: format!("SELECT g, sum(x) AS sum_x FROM {TABLE} GROUP BY g ORDER BY g"),
            checked: false,
        },
    ]
}

pub fn run() -> Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("creating the tokio runtime")?;
    runtime.block_on(run_async())
}

async fn run_async() -> Result<ExitCode> {
    let started = Instant::now();
    let limit = time_limit()?;
    // Declared before the cluster so it is removed after the children are gone.
    let tmp = tempfile::Builder::new()
        .prefix("mavg-ballista-")
        .tempdir()
        .context("creating a temporary directory")?;
    let cluster = Cluster::new(tmp.path().join("logs"))?;

    let outcome = tokio::select! {
        r = tokio::time::timeout(limit, drive(&cluster, tmp.path())) => {
            r.unwrap_or_else(|_| Err(anyhow!("the run exceeded its time limit of {limit:?}")))
        }
        r = shutdown_signal() => Err(r.err().unwrap_or_else(|| anyhow!("interrupted"))),
    };

    let code = match outcome {
        Ok(true) => {
            println!(
                "RESULT: PASS: distributed results equal single-process results bit for bit ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Ok(false) => {
            cluster.print_log_tails();
            println!("RESULT: FAIL ({:.1} s)", started.elapsed().as_secs_f64());
            ExitCode::FAILURE
        }
        Err(e) => {
            cluster.print_log_tails();
            println!(
                "RESULT: FAIL: {e:#} ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
            ExitCode::FAILURE
        }
    };
    cluster.stop_all();
    Ok(code)
}

/// Everything after setup; returns whether all checks passed.
async fn drive(cluster: &Cluster, tmp: &Path) -> Result<bool> {
    println!(
        "Ballista {} with DataFusion {}",
        ballista_core::BALLISTA_VERSION,
        datafusion::DATAFUSION_VERSION
    );
    let data_dir = tmp.join("data");
    std::fs::create_dir_all(&data_dir).context("creating the data directory")?;
    let rows = data::write_table(&data_dir)?;
    println!(
        "table `{TABLE}`: {rows} rows in {} Parquet files under {}",
        data::FILES,
        data_dir.display()
    );

    // Ports chosen by the OS, released just before the children bind them.
    let ports = free_ports(1 + 2 * EXECUTORS)?;
    let scheduler_port = ports[0];
    cluster.spawn(
        "scheduler",
        &["scheduler", "--port", &scheduler_port.to_string()],
        false,
    )?;
    wait_until(cluster, STARTUP_TIMEOUT, "scheduler port", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", scheduler_port))
            .await
            .is_ok()
    })
    .await?;
    for e in 0..EXECUTORS {
        let id = format!("executor-{}", e + 1);
        let work_dir = tmp.join(&id);
        std::fs::create_dir_all(&work_dir).context("creating an executor work directory")?;
        let work_dir = work_dir
            .to_str()
            .context("the temporary directory path is not UTF-8")?
            .to_string();
        let args = [
            "executor".to_string(),
            "--id".into(),
            id.clone(),
            "--port".into(),
            ports[1 + 2 * e].to_string(),
            "--grpc-port".into(),
            ports[2 + 2 * e].to_string(),
            "--scheduler-port".into(),
            scheduler_port.to_string(),
            "--work-dir".into(),
            work_dir,
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cluster.spawn(&id, &args, true)?;
    }
    wait_until(
        cluster,
        STARTUP_TIMEOUT,
        "both executors registered",
        || async move { scheduler_ready(scheduler_port).await },
    )
    .await?;
    println!(
        "cluster up: scheduler on 127.0.0.1:{scheduler_port}, {EXECUTORS} executors ({EXECUTOR_VCORES} slots each); processes: {}",
        cluster.describe()
    );

    let local = local_session(&data_dir).await?;
    let remote = remote_session(scheduler_port, &data_dir).await?;

    let mut all_ok = true;
    let mut exact_group_by = None;
    for query in queries() {
        println!("\n[{}] {}", query.label, query.sql);
        let expected = run_query(&local, &query.sql)
            .await
            .with_context(|| format!("{} in the single-process session", query.label))?;
        let seen_before = cluster.tasks().len();
        let actual = tokio::select! {
            r = tokio::time::timeout(QUERY_TIMEOUT, run_query(&remote, &query.sql)) => r
                .map_err(|_| anyhow!("{} on Ballista exceeded {QUERY_TIMEOUT:?}", query.label))?
                .with_context(|| format!("{} on Ballista", query.label))?,
            dead = cluster.watch_for_exit() => return Err(dead),
        };
        // Task lines are printed before the tasks run, but arrive through pipes.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let tasks = cluster.tasks()[seen_before..].to_vec();
        let distributed = report_stages(&tasks);

        println!(
            "  {} rows x {} columns: {}",
            actual.rows.len(),
            actual.columns.len(),
            actual
                .columns
                .iter()
                .map(|(n, t)| format!("{n} {t}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let difference = actual.first_difference(&expected);
        if query.checked {
            match &difference {
                None => println!("  bit for bit equal to the single-process result: yes"),
                Some(d) => {
                    println!("  MISMATCH with the single-process result: {d}");
                    all_ok = false;
                }
            }
            if !distributed {
                println!(
                    "  FAIL: the job did not run as several stages on both executors, \
                     with partial states merged across processes"
                );
                all_ok = false;
            }
        } else {
            let differing = if difference.is_some() {
                actual.differing_cells(&expected)
            } else {
                0
            };
            println!("  (not checked) distributed vs single-process: {differing} differing cells");
        }
        if query.label == "group-by" {
            all_ok &= check_known_group(&actual);
            exact_group_by = Some(actual);
        } else if let (false, Some(exact)) = (query.checked, &exact_group_by) {
            contrast_with_exact(&actual, exact);
        }
    }
    Ok(all_ok)
}

async fn local_session(data_dir: &Path) -> Result<SessionContext> {
    let ctx = SessionContext::new_with_config(
        SessionConfig::new().with_target_partitions(TARGET_PARTITIONS),
    );
    mavg_datafusion::register(&ctx);
    register_table(&ctx, data_dir).await?;
    Ok(ctx)
}

async fn remote_session(scheduler_port: u16, data_dir: &Path) -> Result<SessionContext> {
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(SessionConfig::new_with_ballista().with_target_partitions(TARGET_PARTITIONS))
        .build();
    let url = format!("df://127.0.0.1:{scheduler_port}");
    let ctx = SessionContext::remote_with_state(&url, state)
        .await
        .with_context(|| format!("connecting to the scheduler at {url}"))?;
    // The client plans SQL into a logical plan before sending it, so it needs
    // the UDAFs too. Registered only now: `remote_with_state` replaces the
    // state's aggregate functions with Ballista's defaults.
    mavg_datafusion::register(&ctx);
    register_table(&ctx, data_dir).await?;
    Ok(ctx)
}

async fn register_table(ctx: &SessionContext, data_dir: &Path) -> Result<()> {
    let path = data_dir
        .to_str()
        .context("the data directory path is not UTF-8")?;
    ctx.register_parquet(TABLE, path, ParquetReadOptions::default())
        .await
        .with_context(|| format!("registering {path}"))
}

async fn run_query(ctx: &SessionContext, sql: &str) -> Result<Table> {
    let batches = ctx.sql(sql).await?.collect().await?;
    Table::from_batches(&batches)
}

/// One line an executor printed for a task it started.
#[derive(Clone)]
struct TaskRecord {
    executor: String,
    job: String,
    stage: usize,
    partitions: String,
    operators: String,
}

fn parse_task_line(line: &str) -> Option<TaskRecord> {
    let mut f = line.strip_prefix(TASK_TAG)?.strip_prefix('\t')?.split('\t');
    let executor = f.next()?.to_string();
    let job = f.next()?.to_string();
    let stage = f.next()?.parse().ok()?;
    let _task = f.next()?;
    let partitions = f.next()?.to_string();
    let operators = f.next()?.to_string();
    Some(TaskRecord {
        executor,
        job,
        stage,
        partitions,
        operators,
    })
}

/// Prints the stages the executors reported for one query. Returns whether the
/// job had several stages and tasks on every executor and, when the stages
/// aggregate `exact_*` in two phases, whether the partial states were
/// computed on several executors and merged in a later stage.
fn report_stages(tasks: &[TaskRecord]) -> bool {
    let jobs: BTreeSet<&str> = tasks.iter().map(|t| t.job.as_str()).collect();
    let executors: BTreeSet<&str> = tasks.iter().map(|t| t.executor.as_str()).collect();
    // (job, stage) -> (each task as "executor -> output partitions", the operators)
    let mut stages: BTreeMap<(&str, usize), (Vec<String>, &str)> = BTreeMap::new();
    for t in tasks {
        let entry = stages
            .entry((t.job.as_str(), t.stage))
            .or_insert_with(|| (vec![], t.operators.as_str()));
        entry.0.push(format!(
            "{} -> output partitions {}",
            t.executor, t.partitions
        ));
    }
    println!(
        "  Ballista job {}: {} stages, {} tasks, executors that ran tasks: {}",
        jobs.iter().copied().collect::<Vec<_>>().join(", "),
        stages.len(),
        tasks.len(),
        executors.iter().copied().collect::<Vec<_>>().join(", ")
    );
    for ((_, stage), (placed, operators)) in &stages {
        println!("    stage {stage}: {operators}");
        println!("      tasks: {}", placed.join("; "));
    }

    let stage_where = |mode: &str| {
        tasks
            .iter()
            .find(|t| t.operators.contains(&format!("mode={mode} [exact_*]")))
            .map(|t| {
                let on: BTreeSet<&str> = tasks
                    .iter()
                    .filter(|u| u.stage == t.stage)
                    .map(|u| u.executor.as_str())
                    .collect();
                (t.stage, on.into_iter().collect::<Vec<_>>().join(", "))
            })
    };
    let mut crossing_ok = true;
    if let Some((partial, partial_on)) = stage_where("Partial") {
        match stage_where("FinalPartitioned").or_else(|| stage_where("Final")) {
            Some((fin, fin_on)) if fin != partial => {
                println!(
                    "  exact_* partial states: computed in stage {partial} on {partial_on}, \
                     shuffled, merged in stage {fin} on {fin_on}"
                );
                crossing_ok = partial_on.contains(", ");
            }
            _ => {
                println!("  exact_* partial states were not merged in a separate stage");
                crossing_ok = false;
            }
        }
    }
    stages.len() >= 2 && executors.len() == EXECUTORS && crossing_ok
}

/// The group whose rows 1e16, 1.0, -1e16 sit in three different files: its
/// results are known exactly whatever the order of the rows.
fn check_known_group(result: &Table) -> bool {
    let (Some(g), Some(sum_x), Some(avg_x), Some(sum_n), Some(avg_n)) = (
        result.column("g"),
        result.column("sum_x"),
        result.column("avg_x"),
        result.column("sum_n"),
        result.column("avg_n"),
    ) else {
        println!("  FAIL: group-by result lacks expected columns");
        return false;
    };
    let Some(row) = result.rows.iter().find(|r| r[g] == Cell::Int(KNOWN_GROUP)) else {
        println!("  FAIL: group g={KNOWN_GROUP} missing");
        return false;
    };
    let three_max = 3 * i64::MAX as i128;
    let checks = [
        (
            "sum_x",
            row[sum_x],
            matches!(row[sum_x], Cell::F64(b) if b == 1.0f64.to_bits()),
        ),
        (
            "avg_x",
            row[avg_x],
            matches!(row[avg_x], Cell::F64(b) if b == (1.0f64 / 3.0).to_bits()),
        ),
        (
            "sum_n",
            row[sum_n],
            matches!(row[sum_n], Cell::Decimal(v, _, 0) if v == three_max),
        ),
        (
            "avg_n",
            row[avg_n],
            matches!(row[avg_n], Cell::F64(b) if b == (i64::MAX as f64).to_bits()),
        ),
    ];
    let mut ok = true;
    for (name, cell, good) in checks {
        println!(
            "  known group g={KNOWN_GROUP} (x: 1e16, 1.0, -1e16; n: 3 x i64::MAX): {name} = {cell} {}",
            if good { "ok" } else { "WRONG" }
        );
        ok &= good;
    }
    ok
}

fn contrast_with_exact(builtin: &Table, exact: &Table) {
    let (Some(b), Some(e)) = (builtin.column("sum_x"), exact.column("sum_x")) else {
        return;
    };
    let differing = builtin
        .rows
        .iter()
        .zip(&exact.rows)
        .filter(|(x, y)| x[b] != y[e])
        .count();
    println!(
        "  built-in sum(x) differs from exact_sum(x) in {differing} of {} groups (the data is order-sensitive)",
        builtin.rows.len()
    );
}

/// The child processes; each is killed when the driver ends, however it ends.
struct Cluster {
    log_dir: PathBuf,
    exe: PathBuf,
    children: Mutex<Vec<(String, Child)>>,
    tasks: Arc<Mutex<Vec<TaskRecord>>>,
}

impl Cluster {
    fn new(log_dir: PathBuf) -> Result<Cluster> {
        std::fs::create_dir_all(&log_dir).context("creating the log directory")?;
        Ok(Cluster {
            log_dir,
            exe: std::env::current_exe().context("locating this executable")?,
            children: Mutex::new(vec![]),
            tasks: Arc::new(Mutex::new(vec![])),
        })
    }

    fn children(&self) -> MutexGuard<'_, Vec<(String, Child)>> {
        self.children.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tasks(&self) -> Vec<TaskRecord> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Starts `name`; its stderr (and stdout unless `report_tasks`) goes to a
    /// log file. With `report_tasks`, stdout is read for task lines.
    fn spawn(&self, name: &str, args: &[&str], report_tasks: bool) -> Result<()> {
        let log_path = self.log_dir.join(format!("{name}.log"));
        let log =
            File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let stdout = if report_tasks {
            Stdio::piped()
        } else {
            Stdio::from(log.try_clone().context("duplicating a log file handle")?)
        };
        let mut child = Command::new(&self.exe)
            .args(args)
            // The child exits when this pipe closes, even if the driver is killed.
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting the {name} process"))?;
        if let Some(out) = child.stdout.take() {
            let tasks = self.tasks.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                    if let Some(record) = parse_task_line(&line) {
                        tasks.lock().unwrap_or_else(|e| e.into_inner()).push(record);
                    }
                }
            });
        }
        self.children().push((name.to_string(), child));
        Ok(())
    }

    fn describe(&self) -> String {
        self.children()
            .iter()
            .map(|(name, c)| format!("{name} pid {}", c.id()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// An error naming the first child that has exited, if any.
    fn exited(&self) -> Option<anyhow::Error> {
        for (name, child) in self.children().iter_mut() {
            match child.try_wait() {
                Ok(Some(status)) => return Some(anyhow!("the {name} process exited: {status}")),
                Ok(None) => {}
                Err(e) => return Some(anyhow!("checking the {name} process: {e}")),
            }
        }
        None
    }

    /// Resolves when a child exits.
    async fn watch_for_exit(&self) -> anyhow::Error {
        loop {
            if let Some(e) = self.exited() {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn print_log_tails(&self) {
        for (name, _) in self.children().iter() {
            let path = self.log_dir.join(format!("{name}.log"));
            let mut text = String::new();
            if File::open(&path)
                .and_then(|mut f| f.read_to_string(&mut text))
                .is_err()
            {
                continue;
            }
            let lines: Vec<&str> = text.lines().collect();
            println!("--- last lines of {name}'s log ---");
            for line in &lines[lines.len().saturating_sub(15)..] {
                println!("  {line}");
            }
        }
    }

    fn stop_all(&self) {
        for (_, child) in self.children().iter_mut() {
            // Already exited is fine; anything else leaves nothing more to try.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Polls `ready` until it holds, failing early if a child exits.
async fn wait_until<F, Fut>(cluster: &Cluster, limit: Duration, what: &str, ready: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if ready().await {
            return Ok(());
        }
        if let Some(e) = cluster.exited() {
            return Err(e.context(format!("waiting for {what}")));
        }
        if Instant::now() > deadline {
            bail!("waiting for {what}: not ready after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The scheduler's /readyz answers 200 once `min_ready_executors` (two) have
/// registered.
async fn scheduler_ready(port: u16) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await?;
        Ok::<bool, std::io::Error>(reply.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Ok(true))
    )
}

fn free_ports(n: usize) -> Result<Vec<u16>> {
    // All held at once so that they are distinct.
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").context("finding a free port on 127.0.0.1"))
        .collect::<Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr().context("reading a bound port")?.port()))
        .collect()
}

fn time_limit() -> Result<Duration> {
    match std::env::var("MAVG_BALLISTA_TIMEOUT_SECS") {
        Ok(v) => Ok(Duration::from_secs(v.parse().with_context(|| {
            format!("MAVG_BALLISTA_TIMEOUT_SECS={v:?} is not a number of seconds")
        })?)),
        Err(_) => Ok(DEFAULT_TIME_LIMIT),
    }
}

/// Resolves on Ctrl-C or SIGTERM, so that the children are still stopped.
async fn shutdown_signal() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    std::io::stdout().flush().ok();
    bail!("interrupted by a signal")
}
