"""``zhengshu hot``: hot issues (热点问题) from a message-board export, no database.

``scan`` reads a CSV in the teddy2020c format (留言编号, 留言用户, 留言主题, 留言时间,
留言详情, and 点赞数 / 反对数 or 答复意见), clusters the messages and prints the hottest
issues, one JSON object a line, on stdout; progress goes to stderr.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

hot_app = typer.Typer(help="热点问题 / hot issues", no_args_is_help=True)


@hot_app.callback()
def _group() -> None:
    # A group even with one command, so that ``hot scan`` reads the same standalone and
    # once registered under the main CLI.
    pass


def _fail(zh: str, en: str, code: int = 2) -> None:
    typer.secho(f"错误：{zh} / {en}", fg="red", err=True)
    raise typer.Exit(code)


@hot_app.command("scan")
def scan(
    data: Annotated[
        Path, typer.Option("--data", help="留言 CSV（留言编号、留言主题、留言时间、留言详情…）")
    ],
    top: Annotated[int, typer.Option("--top", min=1, help="输出前 N 个热点问题")] = 5,
    window_days: Annotated[
        float, typer.Option("--window-days", min=1.0, help="时间窗口（天）")
    ] = 30.0,
) -> None:
    """找出热点问题：同一地点或同一群体、同一问题的留言聚类并按热度排序（每行一个 JSON）。"""
    from zhengshu.modules.hotline.insight.hot import cluster, read_messages_csv

    if not data.is_file():
        _fail(f"找不到文件 {data}", f"no such file: {data}")
    started = time.perf_counter()
    try:
        messages = read_messages_csv(data)
    except (ValueError, OSError, UnicodeError) as exc:
        _fail(f"无法读取 {data}：{exc}", f"cannot read {data}")
        return
    if not messages:
        _fail(f"{data} 中没有留言", f"no messages in {data}")
    typer.echo(f"读取 {len(messages)} 条留言，聚类中… / read {len(messages)} messages", err=True)
    issues = cluster(messages, window_days=window_days)
    for issue in issues[:top]:
        typer.echo(json.dumps(issue.as_json(), ensure_ascii=False))
    elapsed = time.perf_counter() - started
    typer.echo(
        f"共 {len(issues)} 个热点问题，输出前 {min(top, len(issues))} 个，用时 {elapsed:.1f} 秒"
        f" / {len(issues)} issues, {elapsed:.1f} s",
        err=True,
    )
