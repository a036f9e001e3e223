"""The config file's text as the page shows it (secrets as "***", layout and comments kept) and put back
together from an edit: a "***" left keeps the value in force at its key, wherever the key is written."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.web.config_edit import EditError, mask_text, unmask_text

FILE = r'''# the plant room gateway
[gateway]
id = "gw-1"   # keep
[mqtt]
host = "broker.local"
username = "gw"
password = "s3cr\"et"   # from the installer
[commands]
auth = "hmac"
secret = '${cred:edge-secret}'
[[devices]]
name = "a"
opts = { token = "tok-a", x = 1 }
[[devices]]
name = "b"
note = 'token = "not a secret"'
ha.api_key = "k-b"
'''


def test_secrets_masked_in_place_references_and_the_rest_kept() -> None:
    shown = mask_text(FILE)
    assert shown is not None
    for secret in ('s3cr\\"et', "tok-a", "k-b"):
        assert secret not in shown
    assert 'password = "***"   # from the installer' in shown
    assert 'opts = { token = "***", x = 1 }' in shown and 'ha.api_key = "***"' in shown
    assert "secret = '${cred:edge-secret}'" in shown  # a reference is no secret
    assert "note = 'token = \"not a secret\"'" in shown  # text inside a string is not a key
    assert shown.replace('"***"', '""').count("\n") == FILE.count("\n")


def test_unchanged_placeholders_keep_the_values_in_force() -> None:
    edited = mask_text(FILE).replace('host = "broker.local"', 'host = "broker2.local"')
    back = unmask_text(edited, FILE)
    assert tomllib.loads(back) == {**tomllib.loads(FILE), "mqtt": {**tomllib.loads(FILE)["mqtt"], "host": "broker2.local"}}
    assert "# from the installer" in back
    assert unmask_text(mask_text(FILE), FILE) == FILE


def test_a_secret_typed_anew_replaces_the_old_one() -> None:
    edited = mask_text(FILE).replace('password = "***"', 'password = "new-one"')
    assert tomllib.loads(unmask_text(edited, FILE))["mqtt"]["password"] == "new-one"


def test_placeholder_where_nothing_is_in_force_names_its_line() -> None:
    edited = mask_text(FILE).replace('name = "b"\n', 'name = "b"\npassword = "***"\n')
    with pytest.raises(EditError, match=r"^config:16: devices\.1\.password: "):
        unmask_text(edited, FILE)


def test_text_that_is_no_toml_left_to_the_validation() -> None:
    broken = mask_text(FILE) + "\n[mqtt\n"
    assert unmask_text(broken, FILE) == broken


def test_a_secret_that_cannot_be_masked_in_place_is_not_shown() -> None:
    assert mask_text('[mqtt]\npassword = """multi\nline"""\n') is None
    assert mask_text("[a]\ntokens = [\"t1\", \"t2\"]\n") is None
    assert mask_text("not toml [") is None


@given(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40))
def test_any_secret_round_trips(secret: str) -> None:
    from agent.web.config_edit import _toml_string

    text = f"[mqtt]\nhost = \"h\"\npassword = {_toml_string(secret)}\n"
    shown = mask_text(text)
    assert shown is not None and 'password = "***"' in shown
    assert tomllib.loads(unmask_text(shown, text))["mqtt"]["password"] == secret
