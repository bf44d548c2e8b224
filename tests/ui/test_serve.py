"""`adapt ui` binds loopback by default; another address needs a share token; the command checks before it imports
the web framework."""
from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

import pytest
from typer.testing import CliRunner

from base.errors import AdaptError
from cli.app import app
from ui.serve import check_bind, is_loopback


def test_loopback_addresses():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("no-such-host.invalid")


def test_a_public_bind_needs_a_long_enough_token():
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "x" * 16)
    with pytest.raises(AdaptError, match="give --share-token"):
        check_bind("0.0.0.0", None)
    with pytest.raises(AdaptError, match="at least 16 characters"):
        check_bind("0.0.0.0", "short")


def test_cli_refuses_a_public_bind_and_a_missing_workspace(tmp_path):
    result = CliRunner().invoke(app, ["ui", "--host", "0.0.0.0", "--workspace", str(tmp_path)])
    assert result.exit_code == 2 and "--share-token" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["ui", "--workspace", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "workspace folder not found" in result.output


def test_with_a_token_nothing_answers_before_login(start_board, tmp_path):
    token = "a-secret-of-20-chars"
    url = start_board(tmp_path, "--host", "0.0.0.0", "--share-token", token)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url + "config", timeout=10)
    assert refused.value.code == 401

    def login(password: str) -> int:
        form = urllib.parse.urlencode({"username": "anyone", "password": password}).encode()
        try:
            return urllib.request.urlopen(urllib.request.Request(url + "login", data=form), timeout=10).status
        except urllib.error.HTTPError as error:
            return error.code

    assert login("wrong-password-guess") == 400
    assert login(token) == 200
