"""``python -m pretrain tune`` end to end: real Optuna RDB storage (SQLite file, and a throwaway PostgreSQL server),
real ``python -m pretrain tune`` worker processes training real SB3 on the real MuJoCo env, for seconds per trial.

Workers share a study through the storage alone: trials get distinct numbers, each trial is run by one worker,
the study stops at ``--n-trials``. A worker stopped by SIGTERM leaves its trial FAIL; a SIGKILLed worker's trial
is failed by the next worker through Optuna's heartbeat; the best trial exports as an ``a1-pretrain --config``.
"""

from __future__ import annotations

import glob
import json
import math
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from pretrain import config as cfgmod
from pretrain import tune, tune_space
from pretrain.train import parse
from pretrain.tune_trial import REPORT_STEPS, CurveReporter

TRIAL_MINUTES = "0.05"  # 3 s of training per trial
TINY = [
    *("--trial-minutes", TRIAL_MINUTES, "--pruner", "none", "--seed", "0"),
    *("--fix", "env.num_envs=4", "--fix", "offpolicy.net_arch=[32,32]", "--fix", "offpolicy.batch_size=64"),
    *("--fix", "offpolicy.gradient_steps=1", "--fix", "offpolicy.learning_starts=50"),
    *("--fix", "offpolicy.buffer_size=5000", "--fix", "torch_threads=1", "--fix", "env.threads=1"),
    # Joint-limit bounds: random actions fall within ~15 policy steps, so the learning curve gets rows.
    *("--fix", "bounds.method=joint_limits"),
    *("--eval-robots", "1", "--eval-seconds", "1", "--eval-settle-s", "0.2", "--eval-command", "0.5", "0", "0"),
]
FIXED_KEYS = ("offpolicy.net_arch", "offpolicy.batch_size", "offpolicy.gradient_steps", "bounds.method")
WORKER_TIMEOUT_S = 240


class Worker:
    """A ``python -m pretrain tune`` process; its output goes to a file (read when it is done)."""

    def __init__(self, tmp: Path, name: str, storage: str, study: str, n_trials: int, *extra: str) -> None:
        self.log = tmp / f"{name}.log"
        cmd = [sys.executable, "-m", "pretrain", "tune", "--storage", storage, "--study-name", study]
        cmd += ["--n-trials", str(n_trials), "--out", str(tmp / "tune"), *TINY, *extra]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(cmd, cwd=tmp, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.id = f"{socket.gethostname()}:{self.proc.pid}"

    def wait(self, timeout: float = WORKER_TIMEOUT_S) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"worker did not finish in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text()

    def started(self) -> set[int]:
        return {int(n) for n in re.findall(r"^\[tune\] trial (\d+) started", self.output(), re.MULTILINE)}


def run_tune(argv: list[str]) -> int:
    """``python -m pretrain tune`` in this process: its exit status (argparse's errors exit with 2)."""
    try:
        return tune.main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def run_two_workers(tmp: Path, storage: str, study: str, n_trials: int) -> tuple[optuna.Study, list[Worker]]:
    workers = [Worker(tmp, f"worker{i}", storage, study, n_trials) for i in range(2)]
    for w in workers:
        assert w.wait() == 0, w.output()
    return optuna.load_study(study_name=study, storage=storage), workers


def assert_shared_without_duplicates(study: optuna.Study, workers: list[Worker], n_trials: int, out: Path) -> None:
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == n_trials, [(t.number, t.state.name, t.user_attrs) for t in trials]
    # Anything else is a trial created by a worker racing for the last slot, ended before it ran.
    assert all(t.state == TrialState.FAIL and t.user_attrs.get("surplus") for t in trials if t not in complete)
    started = [w.started() for w in workers]
    assert not started[0] & started[1], "a trial was run by both workers"
    assert started[0] | started[1] == {t.number for t in complete}
    assert all(started), f"each worker ran trials: {started}"
    for t in complete:
        owner = [w for w, s in zip(workers, started, strict=True) if t.number in s]
        assert t.user_attrs["worker"] == owner[0].id
        run_dir = out / study.study_name / f"trial_{t.number}"
        assert t.user_attrs["run_dir"] == str(run_dir)
        for name in ("config.yaml", "curve.csv", "summary.json", "train.log", "tune_score.json"):
            assert (run_dir / name).is_file(), name
        assert (run_dir / "checkpoints" / "latest" / "model.zip").is_file()
        assert math.isfinite(t.value) and t.value == t.user_attrs["score"]["objective"]
        assert t.intermediate_values, "the learning curve was reported to Optuna"
        assert set(t.intermediate_values) <= set(range(0, 101, 100 // REPORT_STEPS))
    assert f"{n_trials}/{n_trials} done" in "".join(w.output() for w in workers)


# ---- SQLite: two workers, then export and report from the same study --------------------------------------
@pytest.fixture(scope="module")
def sqlite_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, optuna.Study, list[Worker]]:
    tmp = tmp_path_factory.mktemp("tune_sqlite")
    storage = f"sqlite:///{tmp / 'db' / 'tune.db'}"
    study, workers = run_two_workers(tmp, storage, "sqlite_study", 3)
    return tmp, storage, study, workers


@pytest.mark.slow
def test_two_workers_share_a_sqlite_study(sqlite_study) -> None:
    tmp, _, study, workers = sqlite_study
    assert_shared_without_duplicates(study, workers, 3, tmp / "tune")
    setup = study.user_attrs["tune_setup"]
    assert setup["trial_minutes"] == float(TRIAL_MINUTES)
    assert [p["key"] for p in setup["space"]] == [s.key for s in tune_space.SPACE if s.key not in FIXED_KEYS]


@pytest.mark.slow
def test_export_preset_is_a_config_a1_pretrain_accepts_and_report_is_written(sqlite_study, capsys) -> None:
    tmp, storage, study, _ = sqlite_study
    argv = ["--storage", storage, "--study-name", "sqlite_study", "--n-trials", "0", "--out", str(tmp / "tune")]
    assert run_tune([*argv, "--export-preset", "tuned", "--report"]) == 0
    root = tmp / "tune" / "sqlite_study"
    path = root / "tuned.yaml"
    assert f"wrote {path}" in capsys.readouterr().out

    config, _ = parse(["--config", str(path), "--minutes", "0.01"])
    best = cfgmod.from_dict(study.best_trial.user_attrs["config"])
    exported = {k: v for k, v, _ in cfgmod.field_paths(config)}
    trained = {k: v for k, v, _ in cfgmod.field_paths(best)}
    for key in [s.key for s in tune_space.SPACE] + ["env.num_envs", "offpolicy.learning_starts", "algo", "preset"]:
        assert exported[key] == trained[key], key
    assert exported["minutes"] == 0.01  # the command line's budget wins over the file's

    report = (root / "report.md").read_text()
    assert "| trial | state | objective |" in report and f"Best: trial {study.best_trial.number}" in report
    for png in ("history.png", "importances.png"):  # 3 completed trials: importances can be computed
        assert (root / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png


@pytest.mark.slow
def test_check_seeds_trains_the_best_and_the_base_config_again_on_fresh_seeds(sqlite_study, capsys) -> None:
    tmp, storage, study, _ = sqlite_study
    argv = ["--storage", storage, "--study-name", "sqlite_study", "--n-trials", "0", "--out", str(tmp / "tune")]
    assert run_tune([*argv, "--check-seeds", "5"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    root = tmp / "tune" / "sqlite_study" / "check"
    best = cfgmod.from_dict(study.best_trial.user_attrs["config"])
    for label in ("best", "base"):
        trained = cfgmod.from_dict(cfgmod.load_yaml(root / f"{label}_seed5" / "config.yaml"))
        assert (trained.seed, trained.minutes) == (5, float(TRIAL_MINUTES))
        score = json.loads((root / f"{label}_seed5" / "tune_score.json").read_text())
        assert result[label]["objectives"] == [score["objective"]]

    def flat(path: Path) -> dict:
        config = cfgmod.from_dict(cfgmod.load_yaml(path))
        return json.loads(json.dumps({k: v for k, v, _ in cfgmod.field_paths(config)}))

    trained_best, trained_base = flat(root / "best_seed5" / "config.yaml"), flat(root / "base_seed5" / "config.yaml")
    sampled = {k: v for k, v, _ in cfgmod.field_paths(best)}
    for spec in tune_space.SPACE:  # the best trial's values; the base: the study's (sac preset + --fix) values
        assert trained_best[spec.key] == json.loads(json.dumps(sampled[spec.key])), spec.key
    per_run = ("seed", "minutes", "timesteps", "out", "log_every_s")
    base = study.user_attrs["tune_setup"]["base"]
    assert {k: v for k, v in base.items() if k not in per_run} == {k: trained_base[k] for k in base if k not in per_run}
    assert (result["metric"], result["value"], result["baseline"]) == (
        "tune_check",
        result["best"]["objective"],
        result["base"]["objective"],
    )
    assert result["wins"] == int(result["value"] < result["baseline"])
    assert json.loads((tmp / "tune" / "sqlite_study" / "check.json").read_text()) == result
    # Run again: the scores are there, nothing is trained.
    assert run_tune([*argv, "--check-seeds", "5"]) == 0
    assert "training" not in capsys.readouterr().out


@pytest.mark.slow
def test_a_worker_with_other_settings_is_refused(sqlite_study, capsys) -> None:
    tmp, storage, _, _ = sqlite_study
    argv = ["--storage", storage, "--study-name", "sqlite_study", "--n-trials", "4", "--out", str(tmp / "tune")]
    assert run_tune([*argv, *TINY, "--trial-minutes", "0.5"]) == 2
    assert "trial_minutes" in capsys.readouterr().err


# ---- PostgreSQL: a throwaway server, two workers ----------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server in a temporary directory on a free loopback port, stopped afterwards. It refuses to
    run as root: as root, it runs as the ``postgres`` user that the Debian package creates."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); scripts/setup.sh installs it")
    bindir = Path(found[-1]).parent
    as_user: dict[str, object] = {}
    root = Path(tempfile.mkdtemp(prefix="a1-tune-pg-"))
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail(
                "running as root, and there is no 'postgres' user to run the server as (apt-get install postgresql)"
            )
        as_user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        os.chown(root, pw.pw_uid, pw.pw_gid)
    data, log, port = root / "data", root / "server.log", free_port()

    def pg(tool: str, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(bindir / tool), *args]
        return subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=120, check=False, **as_user)

    try:
        res = pg("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "--no-locale", "-E", "UTF8")
        if res.returncode:
            pytest.fail(f"initdb failed ({res.returncode}): {res.stdout[-1500:]}{res.stderr[-1500:]}")
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
        res = pg("pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        if res.returncode:
            server_log = log.read_text()[-2000:] if log.exists() else ""
            pytest.fail(f"PostgreSQL did not start on 127.0.0.1:{port}: {res.stdout}{res.stderr}{server_log}")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            pg("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_share_a_postgresql_study(postgres_url: str, tmp_path: Path) -> None:
    study, workers = run_two_workers(tmp_path, postgres_url, "pg_study", 2)
    assert_shared_without_duplicates(study, workers, 2, tmp_path / "tune")


# ---- interrupts --------------------------------------------------------------------------------------------
def training_trial(worker: Worker, root: Path) -> int | None:
    """The number of the worker's trial once its trainer has written a learning-curve row (the trainer's SIGTERM
    handler is installed by then), else None."""
    for number in worker.started():
        curve = root / f"trial_{number}" / "curve.csv"
        if curve.exists() and len(curve.read_text().splitlines()) >= 2:
            return number
    if worker.proc.poll() is not None:
        pytest.fail(f"worker exited before training:\n{worker.output()}")
    return None


@pytest.mark.slow
def test_killed_workers_leave_failed_trials_and_a_restarted_worker_continues(tmp_path: Path) -> None:
    storage, study_name = f"sqlite:///{tmp_path / 'tune.db'}", "killed"
    root = tmp_path / "tune" / study_name
    # 6 s trials: the signals below reach the trainers while they train.
    extra = ("--heartbeat-s", "1", "--trial-minutes", "0.1")
    termed, killed = (Worker(tmp_path, name, storage, study_name, 2, *extra) for name in ("termed", "killed"))
    # SIGTERM: the worker stops its trainer (which keeps its bundle), marks the trial FAIL and exits 130.
    # SIGKILL: nothing runs in the worker; its trial stays RUNNING until its heartbeat is stale.
    stop = {termed: lambda: termed.proc.send_signal(signal.SIGTERM), killed: killed.proc.kill}
    trial_of: dict[Worker, int] = {}
    deadline = time.monotonic() + 150
    while len(trial_of) < 2 and time.monotonic() < deadline:
        for worker in set(stop) - set(trial_of):
            number = training_trial(worker, root)
            if number is not None:
                stop[worker]()
                trial_of[worker] = number
        time.sleep(0.1)
    assert len(trial_of) == 2, f"no training after 150 s:\n{termed.output()}\n{killed.output()}"
    termed_trial, killed_trial = trial_of[termed], trial_of[killed]
    assert termed.wait() == 130, termed.output()
    assert f"interrupted (SIGTERM): trial {termed_trial} marked FAIL" in termed.output()
    assert killed.wait() == -signal.SIGKILL
    trials = optuna.load_study(study_name=study_name, storage=storage).get_trials()
    assert {t.number: t.state for t in trials} == {termed_trial: TrialState.FAIL, killed_trial: TrialState.RUNNING}
    assert trials[termed_trial].user_attrs["fail_reason"] == "interrupted (SIGTERM)"
    time.sleep(2.5)  # the grace period: 2 heartbeats

    restarted = Worker(tmp_path, "restarted", storage, study_name, 1, *extra)
    assert restarted.wait() == 0, restarted.output()
    assert f"trial {killed_trial} of {killed.id} stopped sending heartbeats: marked FAIL" in restarted.output()
    trials = optuna.load_study(study_name=study_name, storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE]
    assert trials[2].user_attrs["worker"] == restarted.id
    argv = ["--storage", storage, "--study-name", study_name, "--n-trials", "0", "--out", str(tmp_path / "tune")]
    assert run_tune([*argv, "--report"]) == 0
    assert "need at least 2 completed trials; the study has 1" in (root / "report.md").read_text()
    assert (root / "history.png").is_file() and not (root / "importances.png").exists()
    # Both trainers were stopped by SIGTERM (the killed worker's because its parent died) and kept their bundles.
    assert not trainers_of(root / ".staging" / f"trial_{killed_trial}.yaml"), "the killed worker's trainer lives on"
    for number in (termed_trial, killed_trial):
        summary = (root / f"trial_{number}" / "summary.json").read_text()
        assert '"stop_reason": "signal SIGTERM"' in summary, (number, summary)


def trainers_of(config_path: Path) -> list[int]:
    """Processes whose command line names ``config_path`` (a trial's trainer)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(config_path).encode() in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow
def test_a_pruned_trial_stops_its_trainer_and_is_marked_pruned(tmp_path: Path) -> None:
    storage, study_name = f"sqlite:///{tmp_path / 'tune.db'}", "pruned"
    study = optuna.create_study(study_name=study_name, storage=storage, direction="minimize")
    # Five finished trials whose curves were perfect: the median pruner stops a real one after its 30% warm-up.
    perfect = {step: 0.0 for step in range(5, 101, 100 // REPORT_STEPS)}
    for _ in range(5):
        study.add_trial(optuna.trial.create_trial(value=0.0, intermediate_values=perfect))
    worker = Worker(tmp_path, "worker", storage, study_name, 6, "--pruner", "median", "--trial-minutes", "0.1")
    assert worker.wait() == 0, worker.output()
    trial = optuna.load_study(study_name=study_name, storage=storage).trials[5]
    assert trial.state == TrialState.PRUNED, worker.output()
    assert 30 <= trial.last_step < 100 and all(v > 0 for v in trial.intermediate_values.values())
    assert f"trial 5 PRUNED at {trial.last_step}% of the budget" in worker.output()
    run_dir = tmp_path / "tune" / study_name / "trial_5"
    assert '"stop_reason": "signal SIGTERM"' in (run_dir / "summary.json").read_text()
    assert (run_dir / "checkpoints" / "latest" / "model.zip").is_file() and not (run_dir / "tune_score.json").exists()


# ---- pruning, search space, one-line errors (no training) --------------------------------------------------
def test_curve_reports_at_each_budget_step_and_a_bad_curve_is_pruned(tmp_path: Path) -> None:
    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    good = {step: 0.1 for step in range(5, 101, 5)}
    study.add_trial(optuna.trial.create_trial(value=0.1, intermediate_values=good))
    trial = study.ask()
    curve = tmp_path / "curve.csv"
    reporter = CurveReporter(trial, curve, budget_s=10.0, objective="tracking")
    assert not reporter.update()  # no file yet
    curve.write_text("time_s,timesteps,episodes,ep_return,ep_length,tracking_error\n0.3,40,4,-1,10,nan\n1.02,80,8,-2,")
    assert not reporter.update()  # no tracking error yet; the half-written row is left for later
    with open(curve, "a") as f:
        f.write("12,0.9\n")
    assert reporter.update()  # 10.2% of the budget: steps 5 and 10 reported, worse than the completed trial
    assert study.trials[-1].intermediate_values == {5: 0.9, 10: 0.9}


def test_fix_and_narrow_shape_the_search_space() -> None:
    fixes = {"offpolicy.gamma": "0.98", "env.num_envs": "16"}
    narrows = {"offpolicy.batch_size": "200:1024", "bounds.method": "joint_limits,isaaclab3"}
    space, fixed = tune_space.restrict(tune_space.SPACE, fixes, narrows)
    specs = {s.key: s for s in space}
    assert "offpolicy.gamma" not in specs and fixed == {"offpolicy.gamma": 0.98, "env.num_envs": 16}
    assert (specs["offpolicy.batch_size"].low, specs["offpolicy.batch_size"].high) == (256, 1024)
    assert specs["bounds.method"].choices == ("joint_limits", "isaaclab3")
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask()
    values = tune_space.suggest(trial, space)
    assert values["offpolicy.batch_size"] in (256, 512, 1024)
    assert values["offpolicy.ent_coef"].startswith("auto_") and 0.001 <= float(values["offpolicy.ent_coef"][5:]) <= 0.02
    assert values["offpolicy.net_arch"] in tune_space.NET_ARCHS.values()
    config = cfgmod.merge(cfgmod.preset("sac"), cfgmod.unflatten({**fixed, **values})).validate()
    assert config.offpolicy.gamma == 0.98 and config.env.num_envs == 16


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--fix", "offpolicy.nonsense=1"], "--fix offpolicy.nonsense: unknown config field"),
        (["--fix", "offpolicy.batch_size=many"], "many"),
        (["--narrow", "offpolicy.gamma=0.99"], "LOW:HIGH"),
        (["--narrow", "env.num_envs=1:4"], "not a search parameter"),
        (["--storage", "nonsense"], "not a database URL"),
        (["--storage", "foo://host/db"], "--storage foo://host/db"),
        (["--preset", "ppo"], "--preset"),
    ],
)
def test_bad_input_is_one_line(args: list[str], needle: str, tmp_path: Path, capsys) -> None:
    argv = ["--study-name", "x", "--n-trials", "1", "--trial-minutes", "1", "--out", str(tmp_path), *args]
    assert run_tune(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2, err
