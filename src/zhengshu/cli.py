"""The ``zhengshu`` command: run, migrate, seed, manage people, verify, count working days."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import unicodedata
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session, sessionmaker

from zhengshu import __version__
from zhengshu.cli_dispatch import dispatch_app, geo_app
from zhengshu.cli_hot import hot_app
from zhengshu.kernel import audit, migrate
from zhengshu.kernel.authz import system_principal
from zhengshu.kernel.calendar import ScheduleError, parse_schedule
from zhengshu.kernel.calendar_store import import_schedule, load_calendar
from zhengshu.kernel.db import make_engine, make_sessionmaker, transaction
from zhengshu.kernel.errors import DomainError
from zhengshu.kernel.jobs import Worker
from zhengshu.kernel.settings import Settings, parse_work_periods
from zhengshu.modules.hotline import demo
from zhengshu.modules.hotline.service import HotlineConfig
from zhengshu.org import repository, service
from zhengshu.org.roles import Role, parse_role
from zhengshu.org.schemas import PersonCreate
from zhengshu.org.seed import DemoAccount, seed_demo
from zhengshu.tasks import build_registry

app = typer.Typer(
    help="政数平台 zhengshu：12345 热线、调解、政务服务、公共资源交易、公共数据治理",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="数据库 / database", no_args_is_help=True)
seed_app = typer.Typer(help="演示数据 / demo data", no_args_is_help=True)
user_app = typer.Typer(help="人员账号 / people", no_args_is_help=True)
audit_app = typer.Typer(help="审计日志 / audit log", no_args_is_help=True)
calendar_app = typer.Typer(help="工作日历 / working-day calendar", no_args_is_help=True)
units_app = typer.Typer(help="组织机构 / org tree", no_args_is_help=True)
token_app = typer.Typer(help="接口令牌 / API tokens", no_args_is_help=True)
reports_app = typer.Typer(help="报表 / reports", no_args_is_help=True)
for sub, name in [
    (db_app, "db"),
    (seed_app, "seed"),
    (user_app, "user"),
    (audit_app, "audit"),
    (calendar_app, "calendar"),
    (units_app, "units"),
    (token_app, "token"),
    (reports_app, "reports"),
]:
    app.add_typer(sub, name=name)
app.add_typer(dispatch_app, name="dispatch")
app.add_typer(geo_app, name="geo")
app.add_typer(hot_app, name="hot")

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="数据目录（SQLite 数据库与文件）")]
SYSTEM = system_principal("命令行")


def _settings(data_dir: Path | None = None) -> Settings:
    if data_dir is not None:
        # Exported so that uvicorn worker processes (which build their own app) agree.
        os.environ["ZHENGSHU_DATA_DIR"] = str(data_dir)
        return Settings(data_dir=data_dir)
    return Settings()


def _factory(settings: Settings) -> sessionmaker[Session]:
    factory = make_sessionmaker(make_engine(settings))
    factory.kw["info"] = {audit.AUDIT_KEY: settings.resolved_audit_key()}
    return factory


def _fail(exc: DomainError) -> None:
    typer.secho(f"错误：{exc.message_zh} / {exc.message_en}", fg="red", err=True)
    for line in exc.details.get("errors", []):
        typer.echo(f"  {line}", err=True)
    raise typer.Exit(2)


def _upgrade(settings: Settings) -> None:
    engine = make_engine(settings)
    migrate.upgrade(engine)
    engine.dispose()


@app.command()
def version() -> None:
    """打印版本 / print the version."""
    typer.echo(__version__)


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None) -> None:
    """迁移到最新结构 / migrate to the latest schema."""
    settings = _settings(data_dir)
    _upgrade(settings)
    typer.echo(f"数据库已是最新结构：{_where(settings)}")


@db_app.command("check")
def db_check(data_dir: DataDir = None) -> None:
    """检查模型与迁移是否一致 / fail if models and migrations drift."""
    engine = make_engine(_settings(data_dir))
    migrate.check(engine)
    typer.echo("模型与迁移一致 / no drift")


def _where(settings: Settings) -> str:
    url = settings.resolved_database_url()
    return url.split("@")[-1] if "@" in url else url


def _pad(text: str, width: int) -> str:
    """Pad to a terminal width, counting CJK characters as two columns."""
    used = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(1, width - used)


def _print_accounts(accounts: list[DemoAccount]) -> None:
    typer.echo("\n演示账号（每个角色一个）/ demo accounts:")
    typer.echo("  " + _pad("用户名", 14) + _pad("密码", 22) + _pad("角色", 14) + "单位")
    for a in accounts:
        password = a.password or "（已存在，密码未变）"
        typer.echo("  " + _pad(a.username, 14) + _pad(password, 22) + _pad(a.roles, 14) + a.unit)


def _seed(settings: Settings) -> list[DemoAccount]:
    with transaction(_factory(settings)) as session:
        report, accounts = seed_demo(session, SYSTEM)
    typer.echo(f"组织机构：新增 {report.created}，更新 {report.updated}，未变 {report.unchanged}")
    new = [a for a in accounts if a.password]
    if new:
        path = settings.data_dir / "demo-accounts.txt"
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        lines = [f"{a.username}\t{a.password}\t{a.roles}\t{a.unit}" for a in new]
        existing = path.read_text("utf-8").splitlines() if path.exists() else []
        path.write_text("\n".join(existing + lines) + "\n", encoding="utf-8")
        path.chmod(0o600)
    return accounts


@seed_app.command("demo")
def seed_demo_cmd(data_dir: DataDir = None) -> None:
    """载入东莞市演示组织机构与账号 / load the Dongguan demo city and accounts."""
    settings = _settings(data_dir)
    _upgrade(settings)
    try:
        _print_accounts(_seed(settings))
    except DomainError as exc:
        _fail(exc)


def _seed_orders(settings: Settings, *, days: int, per_day: int) -> None:
    factory = _factory(settings)

    def progress(done: int, total: int) -> None:
        if sys.stdout.isatty():  # a log gets the summary line only
            typer.echo(f"\r演示工单 / demo orders: 第 {done}/{total} 天", nl=done == total)

    report = demo.generate(
        lambda: transaction(factory),
        HotlineConfig.from_settings(settings),
        days=days,
        per_day=per_day,
        progress=progress,
    )
    states = "，".join(f"{k} {v}" for k, v in sorted(report.by_status.items()))
    typer.echo(f"演示工单 {report.orders} 件，办理操作 {report.actions} 次（{states}）")


@seed_app.command("orders")
def seed_orders_cmd(
    days: Annotated[int, typer.Option(min=1, max=365, help="天数 / days of history")] = 21,
    per_day: Annotated[int, typer.Option(min=1, max=2000, help="每日工单 / orders a day")] = 15,
    data_dir: DataDir = None,
) -> None:
    """生成演示工单历史（经真实流程办理）/ a demo order history through the real workflow."""
    settings = _settings(data_dir)
    _upgrade(settings)
    try:
        _seed(settings)
        _seed_orders(settings, days=days, per_day=per_day)
    except DomainError as exc:
        _fail(exc)


def _saved_accounts(settings: Settings, accounts: list[DemoAccount]) -> list[DemoAccount]:
    path = settings.data_dir / "demo-accounts.txt"
    saved = {}
    if path.exists():
        for line in path.read_text("utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) == 4:
                saved[parts[0]] = parts[1]
    return [
        DemoAccount(
            a.username, a.password or saved.get(a.username), a.display_name, a.roles, a.unit
        )
        for a in accounts
    ]


@app.command()
def up(
    host: Annotated[str, typer.Option(help="监听地址")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="端口")] = 8000,
    data_dir: DataDir = None,
) -> None:
    """一键启动：迁移、载入演示数据、启动网站与后台任务 / migrate, seed, serve, work."""
    settings = _settings(data_dir or Path("zhengshu-data"))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    typer.echo(
        f"数据目录 / data: {settings.data_dir.resolve()}  数据库 / database: {_where(settings)}"
    )
    _upgrade(settings)
    accounts = _saved_accounts(settings, _seed(settings))
    _print_accounts(accounts)
    with transaction(_factory(settings)) as session:
        empty = not demo.has_orders(session)
    if empty:
        typer.echo("首次启动：生成三周的演示工单 / first start: three weeks of demo orders")
        _seed_orders(settings, days=21, per_day=15)
    typer.echo(f"\n打开 / open: http://{host}:{port}/   (Ctrl+C 退出)")
    worker = Worker(_factory(settings), build_registry(settings))
    thread = threading.Thread(target=worker.run_forever, name="zhengshu-worker", daemon=True)
    thread.start()
    try:
        _serve(settings, host, port, workers=1)
    finally:
        worker.stop()


def _serve(settings: Settings, host: str, port: int, *, workers: int) -> None:
    import uvicorn

    from zhengshu.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if workers > 1:
        uvicorn.run(
            "zhengshu.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            proxy_headers=True,
            access_log=settings.access_log,
        )
    else:
        uvicorn.run(
            create_app(settings),
            host=host,
            port=port,
            proxy_headers=True,
            access_log=settings.access_log,
        )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="监听地址")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="端口")] = 8000,
    workers: Annotated[int, typer.Option(help="进程数（PostgreSQL 时可多于 1）")] = 1,
    data_dir: DataDir = None,
) -> None:
    """只启动网站（不迁移、不载入数据）/ serve the web app only."""
    settings = _settings(data_dir)
    if workers > 1 and settings.is_sqlite:
        typer.secho("SQLite 只适合单进程；多进程请使用 PostgreSQL", fg="yellow", err=True)
    _serve(settings, host, port, workers=workers)


@app.command()
def worker(data_dir: DataDir = None) -> None:
    """运行后台任务（到期提醒、外发消息、定时报表）/ run background jobs."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = _settings(data_dir)
    loop = Worker(_factory(settings), build_registry(settings))
    typer.echo(f"后台任务已启动 {loop.worker_id}（Ctrl+C 退出）")
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        loop.stop()


@user_app.command("create")
def user_create(
    username: Annotated[str, typer.Option(help="用户名（小写字母开头）")],
    name: Annotated[str, typer.Option(help="姓名")],
    unit: Annotated[str, typer.Option(help="所在单位编码，如 441900003000 或 D020")],
    role: Annotated[list[str], typer.Option(help="角色（可多次），如 admin、话务员")],
    scope: Annotated[str | None, typer.Option(help="管辖范围单位编码（缺省为所在单位）")] = None,
    password: Annotated[str | None, typer.Option(help="密码（缺省则提示输入）")] = None,
    data_dir: DataDir = None,
) -> None:
    """新增人员账号 / create a person."""
    settings = _settings(data_dir)
    try:
        roles = [parse_role(r) for r in role]
    except ValueError as exc:
        typer.secho(
            f"未知角色 / unknown role: {exc}；可选：{', '.join(r.value for r in Role)}",
            fg="red",
            err=True,
        )
        raise typer.Exit(2) from exc
    if password is None:
        password = typer.prompt("密码 / password", hide_input=True, confirmation_prompt=True)
    try:
        with transaction(_factory(settings)) as session:
            unit_row = repository.unit_by_code(session, unit)
            scope_row = repository.unit_by_code(session, scope) if scope else None
            if unit_row is None or (scope and scope_row is None):
                typer.secho(
                    f"单位编码不存在 / unknown unit code: {unit if unit_row is None else scope}",
                    fg="red",
                    err=True,
                )
                raise typer.Exit(2)
            try:
                data = PersonCreate(
                    username=username,
                    display_name=name,
                    unit_id=unit_row.id,
                    scope_unit_id=scope_row.id if scope_row else None,
                    roles=roles,
                    password=password,
                )
            except ValueError as exc:
                typer.secho(f"输入有误 / invalid input: {exc}", fg="red", err=True)
                raise typer.Exit(2) from exc
            person = service.create_person(session, SYSTEM, data=data)
            typer.echo(f"已创建 {person.username}（{person.display_name}），单位：{unit_row.name}")
    except DomainError as exc:
        _fail(exc)


AnchorFile = Annotated[
    Path | None,
    typer.Option("--anchor", help="外部锚点文件（放在数据库之外）：校验后写入链头，下次核对"),
]


@audit_app.command("verify")
def audit_verify(data_dir: DataDir = None, anchor: AnchorFile = None) -> None:
    """校验审计日志哈希链 / verify the audit hash chain; exits 1 on a break."""
    settings = _settings(data_dir)
    saved = None
    if anchor is not None and anchor.exists():
        try:
            data = json.loads(anchor.read_text("utf-8"))
            saved = (int(data["seq"]), str(data["hash"]))
        except (ValueError, KeyError, TypeError) as exc:
            typer.secho(f"锚点文件无法读取 / unreadable anchor: {anchor}", fg="red", err=True)
            raise typer.Exit(2) from exc
    with transaction(_factory(settings), write=False) as session:
        report = audit.verify(session, anchor=saved if saved and saved[0] > 0 else None)
        head = session.get(audit.AuditChainHead, 1)
    if report.ok:
        typer.echo(f"OK：审计链完整，共 {report.rows} 条 / chain intact, {report.rows} rows")
        if anchor is not None and head is not None:
            anchor.write_text(json.dumps({"seq": head.seq, "hash": head.hash}), encoding="utf-8")
        return
    assert report.problem is not None
    typer.secho(f"FAILED：{report.problem.message_zh}", fg="red")
    typer.echo(
        f"  seq={report.problem.seq} kind={report.problem.kind}: {report.problem.message_en}"
    )
    raise typer.Exit(1)


@calendar_app.command("add-working-days")
def calendar_add(
    start: Annotated[str, typer.Argument(help="起算日期 YYYY-MM-DD")],
    days: Annotated[int, typer.Argument(help="工作日数（次日起算）")],
    data_dir: DataDir = None,
) -> None:
    """按工作日计算截止日期（次日起算）/ the date N working days after DATE."""
    try:
        day = date.fromisoformat(start)
    except ValueError as exc:
        typer.secho(f"日期格式应为 YYYY-MM-DD / bad date: {start}", fg="red", err=True)
        raise typer.Exit(2) from exc
    if days < 0:
        typer.secho("工作日数不能为负 / N must be >= 0", fg="red", err=True)
        raise typer.Exit(2)
    settings = _settings(data_dir)
    with transaction(_factory(settings), write=False) as session:
        result = load_calendar(session, parse_work_periods(settings.work_periods)).add_working_days(
            day, days
        )
    typer.echo(result.value.isoformat())
    if result.provisional:
        typer.secho(
            "（暂定：含尚未导入官方节假日安排的年份，按周一至周五计算 / provisional）",
            fg="yellow",
            err=True,
        )


@calendar_app.command("import")
def calendar_import(
    path: Annotated[Path, typer.Argument(help="安排文件：每行 日期,休|班,名称")],
    year: Annotated[int, typer.Option(help="年份")],
    data_dir: DataDir = None,
) -> None:
    """导入国务院公布的某年节假日安排 / import the official schedule of a year."""
    settings = _settings(data_dir)
    try:
        entries = parse_schedule(path.read_text("utf-8-sig"), year=year)
    except ScheduleError as exc:
        typer.secho(f"错误：{exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    except OSError as exc:
        typer.secho(f"无法读取文件 / cannot read: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    try:
        with transaction(_factory(settings)) as session:
            import_schedule(session, SYSTEM, year=year, entries=entries)
    except DomainError as exc:
        _fail(exc)
    rest = sum(not e.is_workday for e in entries)
    typer.echo(f"已导入 {year} 年：休息 {rest} 天，调休上班 {len(entries) - rest} 天")


@units_app.command("import")
def units_import(
    path: Annotated[Path, typer.Argument(help="CSV：code,parent_code,kind,name,short_name")],
    data_dir: DataDir = None,
) -> None:
    """从 CSV 导入组织机构 / import the org tree from CSV."""
    settings = _settings(data_dir)
    try:
        with transaction(_factory(settings)) as session:
            report = service.import_units(
                session, SYSTEM, rows=service.parse_units_csv(path.read_text("utf-8-sig"))
            )
    except DomainError as exc:
        _fail(exc)
    typer.echo(f"新增 {report.created}，更新 {report.updated}，未变 {report.unchanged}")


@units_app.command("export")
def units_export(data_dir: DataDir = None) -> None:
    """把组织机构导出为 CSV（标准输出）/ export the org tree as CSV to stdout."""
    settings = _settings(data_dir)
    with transaction(_factory(settings), write=False) as session:
        sys.stdout.write(service.export_units_csv(session, SYSTEM))


# --kind as operators say it -> (token kind stored, default unit code)
TOKEN_KINDS = {
    "partner110": ("partner", "D009"),  # the 110 platform of the public security bureau
    "partner": ("partner", "441900000000"),
    "open311": ("open311", "441900000000"),
}


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="对接系统名称")],
    kind: Annotated[str, typer.Option(help="partner110、open311 或 partner")] = "partner",
    unit: Annotated[
        str | None, typer.Option(help="所属单位编码（缺省：110 为市公安局，其余为全市）")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """签发对接系统 API 密钥（只显示一次）/ issue a partner API key (shown once)."""
    if kind not in TOKEN_KINDS:
        typer.secho(f"kind 只能是 {' / '.join(TOKEN_KINDS)}", fg="red", err=True)
        raise typer.Exit(2)
    stored_kind, default_unit = TOKEN_KINDS[kind]
    unit = unit or default_unit
    settings = _settings(data_dir)
    try:
        with transaction(_factory(settings)) as session:
            unit_row = repository.unit_by_code(session, unit)
            if unit_row is None:
                typer.secho(f"单位编码不存在 / unknown unit: {unit}", fg="red", err=True)
                raise typer.Exit(2)
            plaintext, _ = service.issue_partner_token(
                session,
                SYSTEM,
                name=name,
                kind=stored_kind,
                unit_id=unit_row.id,
                roles=[Role.PARTNER],
            )
    except DomainError as exc:
        _fail(exc)
    typer.echo(plaintext)


# --- reports ------------------------------------------------------------------------------


@reports_app.command("rebuild")
def reports_rebuild(
    batch: Annotated[int, typer.Option("--batch", min=1, help="每批重算的工单数")] = 2000,
    data_dir: DataDir = None,
) -> None:
    """重算全部工单的报表事实与日汇总（如修改了 kpis.yaml 的满意口径之后）/ recompute
    every order's report facts and daily rollups."""
    from zhengshu.modules.hotline.reports import facts, kpi

    settings = _settings(data_dir)
    kpi.use_city_file(settings.data_dir / "kpis.yaml")  # what the facts mean in this city
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        typer.echo(f"已重算 {done}/{total} 件工单 / recomputed {done} of {total}", err=True)

    report = facts.rebuild(_factory(settings), batch=batch, progress=progress)
    seconds = time.perf_counter() - started
    typer.echo(
        f"完成：{report.cases} 件工单，{report.days} 个日汇总，用时 {seconds:.1f} 秒"
        f" / done: {report.cases} orders, {report.days} days, {seconds:.1f} s"
    )


# --- backup and restore ------------------------------------------------------------------


@app.command("backup")
def backup_cmd(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="备份文件或目录（缺省：当前目录下按时间命名）"),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """在线备份数据库与附件为一个归档文件 / back up the database and stored files."""
    from zhengshu.ops import backup as ops

    settings = _settings(data_dir)
    try:
        info = ops.backup(settings, out or Path.cwd())
    except DomainError as exc:
        _fail(exc)
    rows = sum(info.tables.values())
    typer.echo(f"已备份 / backed up: {info.path}（{info.size / 1024 / 1024:.1f} MB）")
    typer.echo(
        f"  数据库 {info.database}，版本 {info.revision}，{len(info.tables)} 张表共 {rows} 行；"
        f"审计链至第 {info.audit_seq} 条；文件 {info.files} 个"
    )
    typer.echo("  请把备份文件复制到另一台机器或离线介质，并另行保管审计密钥 / secret_key")


@app.command("restore")
def restore_cmd(
    file: Annotated[Path, typer.Argument(help="zhengshu backup 生成的归档文件")],
    yes: Annotated[bool, typer.Option("--yes", help="不再确认，直接覆盖")] = False,
    data_dir: DataDir = None,
) -> None:
    """用备份覆盖当前数据库与附件（先停止服务与后台任务）/ restore a backup."""
    from zhengshu.ops import backup as ops

    settings = _settings(data_dir)
    if not yes:
        typer.confirm(
            f"将用 {file} 覆盖 {_where(settings)} 的全部数据与附件，确定吗？"
            " / replace all data with the backup?",
            abort=True,
        )
    try:
        info = ops.restore(settings, file)
    except DomainError as exc:
        _fail(exc)
    rows = sum(info.tables.values())
    typer.echo(f"已恢复 / restored: {file}（备份于 {info.created_at}）")
    typer.echo(
        f"  数据库版本 {info.revision}，{len(info.tables)} 张表共 {rows} 行；文件 {info.files} 个"
    )
    if info.upgraded_to:
        typer.echo(f"  已迁移到当前版本 / migrated to {info.upgraded_to}")
    for name, (expected, found) in info.mismatched.items():
        typer.secho(f"  行数不符 {name}：备份 {expected}，恢复后 {found}", fg="red", err=True)
    if not info.head_matches:
        typer.secho("  审计链头与备份记录不符 / audit head differs from the manifest", fg="red")
    if info.audit.ok:
        typer.echo(f"  审计链校验通过，共 {info.audit.rows} 条 / audit chain intact")
    else:
        assert info.audit.problem is not None
        typer.secho(f"  审计链校验失败：{info.audit.problem.message_zh}", fg="red")
        typer.echo("  （若审计密钥与备份时不同，请设置原来的 ZHENGSHU_AUDIT_KEY 或 secret_key）")
    if not info.ok:
        raise typer.Exit(1)


def main() -> None:
    app()
