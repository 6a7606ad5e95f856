"""An option's value is never a test path when pytest picks its rootdir and ini file (issue 14).

pytest picks the rootdir from a first parse of the command line that knows only its own options, so
in `pytest -m milestone2 --results-dir /an/existing/dir` the directory looks like a test path: it
became the rootdir, pytest.ini was not read (no addopts, testpaths or markers) and the root conftest
that declared the option was never loaded ("unrecognized arguments"). This plugin's options are
known by now; where they change the answer, the rootdir, ini file and ini addopts are set as a run
with those paths left out would have them. This uses pytest's private Config fields: if they change,
a warning says to write `--results-dir=DIR` instead, and the run goes on.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    if early_config.inipath is not None:
        return  # an ini file was found (the usual case): nothing was lost
    try:
        _redo_setup(early_config, parser, args)
    except (AttributeError, ImportError, TypeError, ValueError) as e:  # a pytest whose internals differ
        early_config.issue_config_time_warning(pytest.PytestConfigWarning(
            f"qwenharness could not recheck pytest's rootdir ({type(e).__name__}: {e}); if an option's "
            "value was taken for a test path, write it as --option=VALUE"), stacklevel=2)


def _redo_setup(config: Any, parser: Any, args: list[str]) -> None:
    from _pytest.config.findpaths import determine_setup

    ns = parser.parse_known_args(args)
    rootpath, inipath, inicfg, ignored = determine_setup(
        inifile=ns.inifilename, override_ini=ns.override_ini, args=ns.file_or_dir,
        rootdir_cmd_arg=ns.rootdir or None, invocation_dir=config.invocation_params.dir)
    if rootpath == config.rootpath and inipath is None:
        return
    config._rootpath, config._inipath, config._inicfg = rootpath, inipath, inicfg
    config._ignored_config_files = ignored
    config._inicache.clear()
    parser.extra_info.update(rootdir=str(rootpath), inifile=str(inipath))
    addopts = config._validate_args(config.getini("addopts"), "via addopts config")
    args[:] = addopts + args  # what Config.parse does with the ini's addopts; it parses `args` next
    config.pluginmanager.consider_preparse(_without_self(addopts), exclude_only=False)  # -p in addopts
    known = parser.parse_known_args(args, namespace=copy.copy(config.option))
    if known.confcutdir is None:
        known.confcutdir = str(inipath.parent if inipath else rootpath)
    config.known_args_namespace = known


def _without_self(args: list[str]) -> list[str]:
    """`args` less `-p qwenharness.pytest_plugin`: this plugin is registered already (by its entry
    point), and an explicit -p would lift the block that keeps it from being registered twice."""
    out, skip = [], False
    for i, a in enumerate(args):
        if skip:
            skip = False
            continue
        if a == "-p" and i + 1 < len(args) and args[i + 1] == __package__:
            skip = True
            continue
        if a == f"-p{__package__}":
            continue
        out.append(a)
    return out
