"""The tutorial's flow through the Python client openapi-python-client generated from the live
document, used as its README says, with nothing edited (docs/API.md §8.9).

Run by tests/test_clients.py as ``python flow.py BASE_URL ADMIN_EMAIL PASSWORD`` with the
generated package ``widgetsvc_client`` on ``PYTHONPATH``; prints each step, then ``flow ok``.
"""

from __future__ import annotations

import sys
import uuid

from widgetsvc_client import AuthenticatedClient, Client
from widgetsvc_client.api.auth import get_current_user, login, logout, refresh_token, register
from widgetsvc_client.api.users import update_user
from widgetsvc_client.api.widgets import (
    create_widget,
    delete_widget,
    get_widget,
    list_widgets,
    update_widget,
)
from widgetsvc_client.models import (
    Credentials,
    Message,
    PerPage,
    Refresh,
    StatusMessage,
    TokenBody,
    UserBody,
    UserItem,
    UserPatchDisabled,
    Widget,
    WidgetCreate,
    WidgetCursorPage,
    WidgetPage,
    WidgetUpdate,
)


def step(name: str) -> None:
    print(name, flush=True)


def main(base_url: str, admin_email: str, password: str) -> None:
    anonymous = Client(base_url=base_url, raise_on_unexpected_status=True)
    email = f"flow-py-{uuid.uuid4().hex[:8]}@example.com"

    step("register")
    registered = register.sync_detailed(client=anonymous,
                                        body=Credentials(email=email, password=password))
    assert registered.status_code == 201, registered
    assert isinstance(registered.parsed, TokenBody)
    assert registered.parsed.message == "successfully registered"

    step("login")
    session = login.sync(client=anonymous, body=Credentials(email=email, password=password))
    assert isinstance(session, TokenBody), session
    user = AuthenticatedClient(base_url=base_url, token=session.access_token,
                               raise_on_unexpected_status=True)

    step("current user")
    me = get_current_user.sync(client=user)
    assert isinstance(me, UserBody) and me.email == email and me.admin is False, me

    step("create widget (admin)")
    admin_session = login.sync(client=anonymous,
                               body=Credentials(email=admin_email, password=password))
    assert isinstance(admin_session, TokenBody), admin_session
    admin = AuthenticatedClient(base_url=base_url, token=admin_session.access_token,
                                raise_on_unexpected_status=True)
    name = f"py-{uuid.uuid4().hex[:8]}"
    created = create_widget.sync_detailed(client=admin, body=WidgetCreate(
        name=name, info_url="https://www.example.com/widget", deadline="2099-12-31"))
    assert created.status_code == 201, created
    assert created.headers["Location"].endswith(f"/api/v1/widgets/{name}")
    refused = create_widget.sync_detailed(client=user, body=WidgetCreate(
        name=f"{name}-x", info_url="https://www.example.com/", deadline="2099-12-31"))
    assert refused.status_code == 403 and isinstance(refused.parsed, Message), refused
    kept = update_user.sync(public_id=me.public_id, client=admin,
                            body=UserPatchDisabled(disabled=False))
    assert isinstance(kept, UserItem) and kept.disabled is False, kept

    step("list a page")
    listed = list_widgets.sync_detailed(client=user, page=1, per_page=PerPage(10))
    page = listed.parsed
    assert isinstance(page, WidgetPage), listed
    assert (page.page, page.items_per_page) == (1, 10)
    assert name in [widget.name for widget in page.items]
    assert listed.headers["Total-Count"] == str(page.total_items)

    step("list a cursor page, sorted and filtered")
    walked = list_widgets.sync_detailed(client=user, cursor="", per_page=PerPage(5),
                                        passed=False, name_prefix=name)
    first = walked.parsed
    assert isinstance(first, WidgetCursorPage), walked
    assert [widget.name for widget in first.items] == [name]
    assert first.next_cursor is None and not first.has_next
    assert "passed=false" in first.links.self_

    step("get")
    got = get_widget.sync_detailed(name=name, client=user)
    assert isinstance(got.parsed, Widget) and got.parsed.name == name, got
    assert got.parsed.deadline == "12/31/99 11:59:59 PM UTC"
    etag = got.headers["ETag"]

    step("update with If-Match")
    updated = update_widget.sync_detailed(
        name=name, client=admin, if_match=etag,
        body=WidgetUpdate(info_url="https://www.example.com/v2", deadline="2099-12-30"))
    assert updated.status_code == 200 and isinstance(updated.parsed, StatusMessage), updated
    assert updated.headers["ETag"] != etag
    stale = update_widget.sync_detailed(
        name=name, client=admin, if_match=etag,
        body=WidgetUpdate(info_url="https://www.example.com/v3", deadline="2099-12-30"))
    assert stale.status_code == 412 and isinstance(stale.parsed, StatusMessage), stale

    step("delete")
    deleted = delete_widget.sync_detailed(name=name, client=admin,
                                          if_match=updated.headers["ETag"])
    assert deleted.status_code == 204, deleted
    gone = get_widget.sync_detailed(name=name, client=user)
    assert gone.status_code == 404 and isinstance(gone.parsed, StatusMessage), gone

    step("refresh")
    refreshed = refresh_token.sync(client=anonymous,
                                   body=Refresh(refresh_token=session.refresh_token))
    assert isinstance(refreshed, TokenBody) and refreshed.message == "successfully refreshed"
    user = AuthenticatedClient(base_url=base_url, token=refreshed.access_token,
                               raise_on_unexpected_status=True)

    step("logout")
    out = logout.sync(client=user)
    assert isinstance(out, StatusMessage) and out.message == "successfully logged out", out

    step("refused after logout")
    after = get_current_user.sync_detailed(client=user)
    assert after.status_code == 401 and isinstance(after.parsed, Message), after
    assert after.parsed.message == "Token blacklisted. Please log in again."
    print("flow ok", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
