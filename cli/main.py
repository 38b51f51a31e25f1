"""The `regtrain` command."""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import tempfile
from pathlib import Path

from pydantic import ValidationError

from cli.client import FAILURE, ApiClient, CommandError, read_json_file, segment
from cli.follow import follow_events
from cli.keys import add_commands as add_key_commands
from cli.keys import announce_admin_key, redact
from cli.progress import Display, JobProgress, StudyProgress
from cli.views import job_outcome, job_summary, jobs_table, studies_table, study_summary
from core.settings import Settings, get_settings
from models.job_status import JobStatus

# The shell's exit status for a command stopped by Ctrl-C (128 + SIGINT).
INTERRUPTED = 130
# The exit status for a command that cannot run as configured (argparse's for a bad command line).
USAGE = 2


def cmd_migrate(_: argparse.Namespace) -> int:
    from core.celery_app import prepare_sqlite_broker
    from core.migrate import upgrade

    settings = get_settings()
    settings.ensure_home()
    upgrade(settings.resolved_database_url)
    prepare_sqlite_broker(settings)
    print(f"database at head: {redact(settings.resolved_database_url)}")
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    settings = get_settings()
    settings.ensure_home()
    # `regtrain up` has done this before starting its api child; standalone (compose, several hosts),
    # each API process does it: the first one makes the key, the others find it.
    if not args.admin_key_checked and (code := announce_admin_key(start_without_database=True)):
        return code
    uvicorn.run(
        "api.main:app",
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level,
        workers=args.workers,
        # Open event streams would hold a stop for as long as they last; after 5 s they are cut, and
        # their readers reconnect with Last-Event-ID (to this API once it is back, or another).
        timeout_graceful_shutdown=5,
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from core.celery_app import prepare_sqlite_broker
    from core.queues import QUEUE_JOBS, worker_queues
    from worker.celery_app import app

    settings = get_settings()
    settings.ensure_home()
    prepare_sqlite_broker(settings)
    # OpenMP threads that spin for a while (10,000 turns) after a parallel region, then sleep. Measured on 2
    # cores: with libgomp's long default spin, two workers side by side took 600 ms per small job each (a
    # spinning thread holds the core the other needs); threads that sleep at once (OMP_WAIT_POLICY=PASSIVE)
    # made one worker alone take twice as long on every job, small or large, since waking them costs more
    # than the work; 10,000 turns ran a 16-member MLP study as fast as the default. Small jobs train on one
    # thread anyway (worker.runner.small). Set before torch loads its OpenMP runtime; an operator's own
    # GOMP_SPINCOUNT or OMP_WAIT_POLICY wins.
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", "10000")
    # Loaded before the pool forks, so that no job waits for torch or scikit-learn to import.
    import sklearn.datasets  # noqa: F401
    import torch

    import worker.runner
    import worker.studies

    try:
        queues = worker_queues(args.queues, torch.cuda.is_available())
    except ValueError as exc:
        print(f"regtrain worker: {exc}", file=sys.stderr)
        return 2
    concurrency = args.concurrency or settings.worker_concurrency
    worker.runner.JOBS_AT_A_TIME = concurrency
    served = "; ".join(f"{queue} ({QUEUE_JOBS[queue]})" for queue in queues)
    print(f"regtrain worker: serving {served}, {concurrency} at a time", flush=True)
    app.worker_main(
        [
            "worker",
            f"--loglevel={settings.log_level.upper()}",
            f"--queues={','.join(queues)}",
            f"--concurrency={concurrency}",
            # Threads, not forked processes: SIGTERM then reaches the code that hands running jobs back.
            "--pool=threads",
            f"--hostname=regtrain-{socket.gethostname()}-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
    )
    return 0


def cmd_scheduler(_: argparse.Namespace) -> int:
    from scheduler.loop import run

    get_settings().ensure_home()
    run()
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from cli.supervisor import run_up

    cmd_migrate(args)
    if code := announce_admin_key():
        return code
    settings = get_settings()
    port = args.port or settings.port
    print(f"regtrain: API at http://{settings.host}:{port} (Swagger UI at /docs); data in {settings.home.resolve()}")
    return run_up(args.port)


def client_for(args: argparse.Namespace) -> ApiClient:
    return ApiClient.from_settings(args.url)


def cmd_submit(args: argparse.Namespace) -> int:
    spec = read_json_file(args.spec)
    with client_for(args) as client:
        job = client.post("/v1/jobs", spec)
        if not args.follow:
            print(f"job {job['id']} {job['status']}")
            return 0
        return follow(client, "job", job["id"])


def cmd_study(args: argparse.Namespace) -> int:
    spec = read_json_file(args.spec)
    with client_for(args) as client:
        study = client.post("/v1/studies", spec)
        if not args.follow:
            fits = study["progress"]["total"]
            print(f"study {study['id']} {study['status']} ({study['members']} members, {fits} fits)")
            return 0
        return follow(client, "study", study["id"])


def cmd_follow(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        kind, _ = client.job_or_study(args.id)
        return follow(client, kind, args.id)


def follow(client: ApiClient, kind: str, identifier: str) -> int:
    """Streams the events of a job or a study until it ends, then prints how it ended: 0 when it succeeded,
    1 when it failed or was canceled. Ctrl-C stops the following, not the run."""
    display = Display(sys.stdout, sys.stdout.isatty())
    progress = JobProgress(display, identifier) if kind == "job" else StudyProgress(display, identifier)
    resource = f"/v1/{'jobs' if kind == 'job' else 'studies'}/{segment(identifier)}"
    try:
        follow_events(client, f"{resource}/events", progress.handle)
    except KeyboardInterrupt:
        display.finish()
        print(
            f"regtrain: stopped following; the {kind} goes on. Follow it again with `regtrain follow {identifier}`.",
            file=sys.stderr,
        )
        return INTERRUPTED
    finally:
        display.finish()
    final = client.get(resource)
    print(job_outcome(final) if kind == "job" else study_summary(final))
    return 0 if final["status"] == "succeeded" else FAILURE


def cmd_jobs(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        print(jobs_table(client.get("/v1/jobs", status=args.status, limit=args.limit)))
    return 0


def cmd_studies(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        print(studies_table(client.get("/v1/studies", status=args.status, limit=args.limit)))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        kind, body = client.job_or_study(args.id)
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        print(job_summary(body) if kind == "job" else study_summary(body))
    return 0


JOB_PLOTS = ("learning_curves", "penalties", "sparsity", "weights")
STUDY_PLOTS = ("cv_curve", "paths", "variants")
PLOT_FORMATS = {".svg": "svg", ".png": "png"}


def cmd_plot(args: argparse.Namespace) -> int:
    out = Path(args.out)
    plot_format = PLOT_FORMATS.get(out.suffix.lower())
    if plot_format is None:
        raise CommandError(f"cannot tell the image format from {args.out!r}: name the file *.svg or *.png.")
    with client_for(args) as client:
        kind, _ = client.job_or_study(args.id)
        choices = JOB_PLOTS if kind == "job" else STUDY_PLOTS
        plot = args.plot or choices[0]
        if plot not in choices:
            raise CommandError(f"a {kind} has no plot {plot!r}; its plots are {', '.join(choices)}.")
        if args.epoch is not None and plot != "weights":
            raise CommandError("--epoch applies to the weights plot only.")
        resource = f"/v1/{'jobs' if kind == 'job' else 'studies'}/{segment(args.id)}"
        image = client.download(f"{resource}/plots/{plot}.{plot_format}", epoch=args.epoch)
    write_atomically(out, image)
    print(f"wrote {out} ({plot} of {kind} {args.id}, {len(image)} bytes)")
    return 0


def write_atomically(path: Path, content: bytes) -> None:
    """Written beside the target and renamed over it, so that a reader never sees half an image."""
    try:
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as error:
        raise CommandError(f"cannot write {path}: {error.strerror or error}.") from error
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
        # mkstemp makes a private file (0600); the image gets the permissions any new file would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise CommandError(f"cannot write {path}: {error.strerror or error}.") from error


def identifier(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("an id cannot be empty")
    return text


def page_size(text: str) -> int:
    size = int(text) if text.isdigit() else 0
    if not 1 <= size <= 500:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 500, not {text!r}")
    return size


def add_client_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands that talk to a running API: its address is REGTRAIN_URL (else http://REGTRAIN_HOST:
    REGTRAIN_PORT) and the key REGTRAIN_API_KEY (else the key in $REGTRAIN_HOME/admin.key)."""
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument(
        "--url",
        help="API address (default REGTRAIN_URL, else http://REGTRAIN_HOST:REGTRAIN_PORT, i.e. http://127.0.0.1:8000).",
    )
    follow_help = (
        "Show a live progress bar until it ends, then the result; exit status 0 when it succeeded, 1 when it "
        "failed or was canceled. Ctrl-C stops following, not the run."
    )
    epilog = (
        "The key sent is REGTRAIN_API_KEY, else the key in $REGTRAIN_HOME/admin.key. Exit status 2 when the API "
        "cannot be reached or refuses the request."
    )

    def command(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[connection], help=help_text, description=description, epilog=epilog)

    submit = command(
        "submit",
        "Submit a training job (a JSON file, the body of POST /v1/jobs).",
        "Submit a training job to a running API and print its id and status, or follow it to the end.",
    )
    submit.add_argument("spec", metavar="SPEC.json", help='The job, e.g. {"dataset": "builtin:iris"}.')
    submit.add_argument("--follow", action="store_true", help=follow_help)
    submit.set_defaults(func=cmd_submit)

    study = command(
        "study",
        "Submit a study (a JSON file, the body of POST /v1/studies).",
        "Submit a study (a base job with a grid or variants, cross-validated) and print its id, or follow it to "
        "the end and print the best and 1-SE members and the refit job.",
    )
    study.add_argument("spec", metavar="SPEC.json", help="The study: a base job, its search and/or variants, cv.")
    study.add_argument("--follow", action="store_true", help=follow_help)
    study.set_defaults(func=cmd_study)

    follow_command = command(
        "follow",
        "Follow a running job or study until it ends.",
        "Show a job's or a study's progress live (it may have started long ago) and how it ended. Exit status 0 "
        "when it succeeded, 1 when it failed or was canceled.",
    )
    follow_command.add_argument("id", metavar="ID", type=identifier, help="A job id or a study id.")
    follow_command.set_defaults(func=cmd_follow)

    statuses = [status.value for status in JobStatus]
    for name, noun, func in (("jobs", "jobs", cmd_jobs), ("studies", "studies", cmd_studies)):
        listing = command(name, f"List {noun}, newest first.", f"List your tenant's {noun}, newest first, as a table.")
        listing.add_argument("--status", choices=statuses, help=f"Only {noun} in this status.")
        listing.add_argument("--limit", type=page_size, default=20, help="How many to list (1 to 500; default 20).")
        listing.set_defaults(func=func)

    show = command(
        "show",
        "Show a job or a study.",
        "Show a job (status, dataset, model, result metrics per split, sparsity, error) or a study (status, "
        "progress, best, 1-SE and selected members with their scores, refit job).",
    )
    show.add_argument("id", metavar="ID", type=identifier, help="A job id or a study id.")
    show.add_argument("--json", action="store_true", help="Print the API's JSON as it is.")
    show.set_defaults(func=cmd_show)

    plot = command(
        "plot",
        "Save a plot of a job or a study as SVG or PNG.",
        f"Download a plot rendered by the API. Jobs: {', '.join(JOB_PLOTS)} (default {JOB_PLOTS[0]}). Studies: "
        f"{', '.join(STUDY_PLOTS)} (default {STUDY_PLOTS[0]}).",
    )
    plot.add_argument("id", metavar="ID", type=identifier, help="A job id or a study id.")
    plot.add_argument("--out", required=True, metavar="FILE", help="Where to write it: FILE.svg or FILE.png.")
    plot.add_argument("--plot", metavar="NAME", help="Which plot (default: learning_curves, or cv_curve for a study).")
    plot.add_argument("--epoch", type=int, metavar="N", help="The weights plot's epoch (default: the final weights).")
    plot.set_defaults(func=cmd_plot)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="regtrain", description="Training as a service.")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("migrate", help="Bring the database schema to the latest version.").set_defaults(
        func=cmd_migrate
    )

    api = commands.add_parser("api", help="Serve the HTTP API.")
    api.add_argument("--host")
    api.add_argument("--port", type=int)
    api.add_argument("--workers", type=int, default=1, help="Server processes.")
    # Set by `regtrain up`, which made and announced the admin key before starting this process.
    api.add_argument("--admin-key-checked", action="store_true", help=argparse.SUPPRESS)
    api.set_defaults(func=cmd_api)

    worker = commands.add_parser("worker", help="Train queued jobs.")
    worker.add_argument(
        "--queues",
        help="Comma-separated queues: regtrain.train (cpu and auto jobs), regtrain.train.gpu (cuda jobs; needs a "
        "CUDA device). Default: regtrain.train, plus regtrain.train.gpu where CUDA is present.",
    )
    worker.add_argument("--concurrency", type=int, help="Jobs trained at once (default REGTRAIN_WORKER_CONCURRENCY).")
    worker.set_defaults(func=cmd_worker)

    commands.add_parser("scheduler", help="Fire due schedules (any number may run at once).").set_defaults(
        func=cmd_scheduler
    )

    up = commands.add_parser(
        "up", help="Migrate, then run the API, a worker and the scheduler, restarting them if they die."
    )
    up.add_argument("--port", type=int)
    up.set_defaults(func=cmd_up)

    add_client_commands(commands)
    add_key_commands(commands)
    return parser


def log_level() -> int:
    """REGTRAIN_LOG_LEVEL, for every process a command starts (scheduler, worker, client commands); INFO when
    the settings cannot be read, which the command then reports (settings_problem)."""
    try:
        return int(logging.getLevelName(get_settings().log_level.upper()))
    except ValidationError:
        return logging.INFO


def settings_problem(error: ValidationError) -> str:
    """A sentence naming each REGTRAIN_ variable that is not valid and why, without its value (it may be a
    secret)."""
    problems = "; ".join(
        f"REGTRAIN_{'_'.join(str(part) for part in item['loc']).upper()}: {item['msg']}" for item in error.errors()
    )
    return f"a setting is not valid: {problems}."


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=log_level(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # Each request would otherwise be logged at INFO, in the middle of a command's own output.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CommandError as error:
        print(f"regtrain: {error.message}", file=sys.stderr)
        return error.status
    except ValidationError as error:
        if error.title != Settings.__name__:
            raise
        print(f"regtrain: {settings_problem(error)}", file=sys.stderr)
        return USAGE
    except KeyboardInterrupt:
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
