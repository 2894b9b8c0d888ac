"""Businesses, assets, grants, invitations, partners and the audit log, on both stores."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from accord.accounts import assets, people, service, team, tokens
from accord.accounts.models import (
    Actor,
    AdAccountIn,
    BusinessIn,
    CampaignIn,
    InvitationIn,
    PartnerShareIn,
    api_tokens,
    invitations,
    sources,
)
from accord.accounts.service import Access
from accord.core.clock import utcnow
from accord.core.errors import Forbidden, InvalidInput, InvalidToken, NotFound
from accord.store.db import Store

PASSWORD = "correct horse battery"


def _person(store: Store, email: str) -> people.Person:
    with store.write() as conn:
        return people.sign_up(conn, email=email, name=email, password=PASSWORD)


def _actor(person: people.Person) -> Actor:
    return Actor(kind="person", id=person.id, label=person.email)


def _business(store: Store, owner: people.Person, name: str = "Acme") -> str:
    with store.write() as conn:
        return service.new_business(
            conn,
            details=BusinessIn(name=name, contact_email="owner@acme.test"),
            person_id=owner.id,
            actor=_actor(owner),
            ip="10.0.0.1",
        )


def _pixel(store: Store, business_id: str, name: str, max_pixels: int = 10) -> str:
    with store.write() as conn:
        return assets.create_pixel(
            conn,
            business_id=business_id,
            name=name,
            kind="web",
            max_pixels=max_pixels,
            actor=Actor(kind="system", label="test"),
            ip=None,
        ).id


def _pixel_count(store: Store, business_id: str) -> int:
    with store.read() as conn:
        return int(
            conn.execute(
                select(func.count()).where(sources.c.business_id == business_id)
            ).scalar_one()
        )


def test_eleventh_pixel_is_refused_and_nothing_changes(store: Store) -> None:
    owner = _person(store, "ann@acme.test")
    business_id = _business(store, owner)
    for n in range(10):
        _pixel(store, business_id, f"Pixel {n}")
    with pytest.raises(InvalidInput, match="at most 10 pixels") as caught:
        _pixel(store, business_id, "Pixel 11")
    assert caught.value.problems[0].field == "pixels"
    assert _pixel_count(store, business_id) == 10


def test_pixel_names_over_fifty_characters_are_refused(store: Store) -> None:
    owner = _person(store, "ann@acme.test")
    business_id = _business(store, owner)
    _pixel(store, business_id, "x" * 50)
    with pytest.raises(InvalidInput, match=r"at most 50 characters \(this one has 51\)"):
        _pixel(store, business_id, "x" * 51)
    assert _pixel_count(store, business_id) == 1


def test_ad_accounts_close_but_never_go_and_take_no_campaigns_after(store: Store) -> None:
    owner = _person(store, "ann@acme.test")
    business_id = _business(store, owner)
    with store.write() as conn:
        account = assets.create_ad_account(
            conn,
            business_id=business_id,
            data=AdAccountIn(
                name="EU", currency="eur", timezone="Europe/Paris", spend_limit_minor=10_000
            ),
            actor=_actor(owner),
            ip=None,
        )
        campaign = CampaignIn(name="Spring", objective="leads", pricing="CPL", budget_minor=5_000)
        assets.create_campaign(
            conn,
            business_id=business_id,
            ad_account_id=account.id,
            data=campaign,
            actor=_actor(owner),
            ip=None,
        )
        with pytest.raises(InvalidInput, match="spend limit"):
            assets.create_campaign(
                conn,
                business_id=business_id,
                ad_account_id=account.id,
                data=campaign.model_copy(update={"budget_minor": 20_000}),
                actor=_actor(owner),
                ip=None,
            )
        assets.close_ad_account(
            conn, business_id=business_id, ad_account_id=account.id, actor=_actor(owner), ip=None
        )
        with pytest.raises(InvalidInput, match="closed"):
            assets.create_campaign(
                conn,
                business_id=business_id,
                ad_account_id=account.id,
                data=campaign,
                actor=_actor(owner),
                ip=None,
            )
        closed = assets.get_asset(conn, business_id=business_id, asset_id=account.id)
    assert closed.closed_at is not None and closed.details["currency"] == "EUR"


def test_bad_ad_account_and_campaign_inputs_name_their_fields(store: Store) -> None:
    owner = _person(store, "ann@acme.test")
    business_id = _business(store, owner)
    with pytest.raises(InvalidInput) as caught, store.write() as conn:
        assets.create_ad_account(
            conn,
            business_id=business_id,
            data=AdAccountIn(name="EU", currency="EURO", timezone="Mars/Olympus"),
            actor=_actor(owner),
            ip=None,
        )
    assert {p.field for p in caught.value.problems} == {"currency", "timezone"}


def _access(store: Store, business_id: str, person: people.Person) -> service.Access:
    with store.read() as conn:
        role = service.role_of(conn, business_id=business_id, person_id=person.id)
    assert role is not None
    return service.Access(business_id=business_id, role=role, person_id=person.id)


def _invite_and_accept(
    store: Store, business_id: str, email: str, grants: dict[str, list[str]], role: str = "employee"
) -> people.Person:
    with store.write() as conn:
        created = team.invite(
            conn,
            business_id=business_id,
            data=InvitationIn(email=email, role=role, grants=grants),
            invited_by=None,
            days=7,
            by=Access(business_id=business_id, role="admin"),
            actor=Actor(kind="system", label="test"),
            ip=None,
        )
    person = _person(store, email)
    with store.write() as conn:
        team.accept_invitation(conn, token=created.token, person_id=person.id, ip="10.0.0.2")
    return person


def test_employee_sees_only_assigned_assets(store: Store) -> None:
    owner = _person(store, "ann@acme.test")
    business_id = _business(store, owner)
    mine = _pixel(store, business_id, "Shop")
    other = _pixel(store, business_id, "Blog")
    employee = _invite_and_accept(store, business_id, "bob@acme.test", {mine: ["analyse"]})
    access = _access(store, business_id, employee)
    with store.read() as conn:
        assert (
            service.check_asset(conn, access=access, asset_id=mine, kind="pixel", task="analyse")
            == business_id
        )
        with pytest.raises(NotFound):
            service.check_asset(conn, access=access, asset_id=other, kind="pixel", task="analyse")
        with pytest.raises(NotFound):
            service.check_asset(conn, access=access, asset_id=mine, kind="pixel", task="manage")
        assert [a["id"] for a in service.visible_assets(conn, access=access)] == [mine]
        # A task opens its asset, not the business's reports (issue 19 item 4).
        assert service.permitted(conn, access=access, permission="ads.read")
        assert not service.permitted(conn, access=access, permission="reports.read")
        assert not service.permitted(conn, access=access, permission="accounts.manage")
        assert not service.permitted(conn, access=access, permission="no.such")


def test_expired_invitation_is_refused_and_nothing_changes(store: Store) -> None:
    owner = _person(store, "ann@acme.test")
    business_id = _business(store, owner)
    with store.write() as conn:
        created = team.invite(
            conn,
            business_id=business_id,
            data=InvitationIn(email="bob@acme.test", role="employee"),
            invited_by=owner.id,
            days=7,
            by=Access(business_id=business_id, role="admin"),
            actor=_actor(owner),
            ip=None,
        )
        conn.execute(update(invitations).values(expires_at=utcnow() - timedelta(seconds=1)))
    bob = _person(store, "bob@acme.test")
    with pytest.raises(InvalidInput, match="expired"), store.write() as conn:
        team.accept_invitation(conn, token=created.token, person_id=bob.id, ip=None)
    with store.read() as conn:
        assert service.role_of(conn, business_id=business_id, person_id=bob.id) is None
        assert team.list_invitations(conn, business_id=business_id)[0].status == "expired"
    with store.write() as conn:
        renewed = team.renew_invitation(
            conn,
            business_id=business_id,
            invitation_id=created.invitation.id,
            days=7,
            by=Access(business_id=business_id, role="admin"),
            actor=_actor(owner),
            ip=None,
        )
        team.accept_invitation(conn, token=renewed.token, person_id=bob.id, ip=None)
        assert service.role_of(conn, business_id=business_id, person_id=bob.id) == "employee"


def test_revoked_invitation_and_wrong_person_are_refused(store: Store) -> None:
    owner = _person(store, "ann@acme.test")
    business_id = _business(store, owner)
    with store.write() as conn:
        created = team.invite(
            conn,
            business_id=business_id,
            data=InvitationIn(email="bob@acme.test", role="analyst"),
            invited_by=owner.id,
            days=7,
            by=Access(business_id=business_id, role="admin"),
            actor=_actor(owner),
            ip=None,
        )
    eve = _person(store, "eve@acme.test")
    with pytest.raises(InvalidInput, match=r"for bob@acme\.test"), store.write() as conn:
        team.accept_invitation(conn, token=created.token, person_id=eve.id, ip=None)
    with store.write() as conn:
        team.revoke_invitation(
            conn,
            business_id=business_id,
            invitation_id=created.invitation.id,
            actor=_actor(owner),
            ip=None,
        )
    with pytest.raises(InvalidInput, match="withdrawn"), store.read() as conn:
        team.invitation_for_token(conn, token=created.token)


def test_removing_a_person_ends_their_sessions_and_tokens(store: Store) -> None:
    owner = _person(store, "ann@acme.test")
    business_id = _business(store, owner)
    bob = _invite_and_accept(store, business_id, "bob@acme.test", {}, role="admin")
    with store.write() as conn:
        session_token = people.start_session(conn, person_id=bob.id, stage="full", ip=None, hours=1)
        new = tokens.create_token(
            conn,
            access=_access(store, business_id, bob),
            name="ci",
            scope=["profiles.read"],
            actor=_actor(bob),
            ip=None,
        )
    assert tokens.access_for_token(store, f"Bearer {new.token}").access.person_id == bob.id
    with store.write() as conn:
        team.remove_person(
            conn,
            business_id=business_id,
            person_id=bob.id,
            by=Access(business_id=business_id, role="admin"),
            actor=_actor(owner),
            ip=None,
        )
    with store.read() as conn:
        assert people.session_for(conn, token=session_token) is None
    with pytest.raises(InvalidToken):
        tokens.access_for_token(store, f"Bearer {new.token}")


def test_last_admin_cannot_be_removed_or_demoted(store: Store) -> None:
    owner = _person(store, "ann@acme.test")
    business_id = _business(store, owner)
    with pytest.raises(InvalidInput, match="at least one admin"), store.write() as conn:
        team.remove_person(
            conn,
            business_id=business_id,
            person_id=owner.id,
            by=Access(business_id=business_id, role="admin"),
            actor=_actor(owner),
            ip=None,
        )
    with pytest.raises(InvalidInput, match="at least one admin"), store.write() as conn:
        team.set_role(
            conn,
            business_id=business_id,
            person_id=owner.id,
            role="analyst",
            by=Access(business_id=business_id, role="admin"),
            actor=_actor(owner),
            ip=None,
        )


def test_tokens_are_scoped_hashed_and_limited_to_what_the_creator_holds(store: Store) -> None:
    owner = _person(store, "ann@acme.test")
    business_id = _business(store, owner)
    pixel = _pixel(store, business_id, "Shop")
    analyst = _invite_and_accept(store, business_id, "cy@acme.test", {}, role="analyst")
    with pytest.raises(Forbidden, match=r"do not hold: accounts\.manage"), store.write() as conn:
        tokens.create_token(
            conn,
            access=_access(store, business_id, analyst),
            name="x",
            scope=["accounts.manage"],
            actor=_actor(analyst),
            ip=None,
        )
    with store.write() as conn:
        team.set_two_factor_policy(
            conn, business_id=business_id, policy="everyone", actor=_actor(owner), ip=None
        )
    with pytest.raises(Forbidden, match="two-factor"), store.write() as conn:
        tokens.create_token(
            conn,
            access=_access(store, business_id, owner),
            name="x",
            scope=["reports.read"],
            actor=_actor(owner),
            ip=None,
        )
    with store.write() as conn:
        team.set_two_factor_policy(
            conn, business_id=business_id, policy="none", actor=_actor(owner), ip=None
        )
    with store.write() as conn:
        made = tokens.create_token(
            conn,
            access=_access(store, business_id, owner),
            name="reports",
            scope=["reports.read"],
            actor=_actor(owner),
            ip=None,
        )
        stored = list(conn.execute(select(api_tokens.c.token_hash)).scalars())
    assert made.token not in stored
    token = tokens.access_for_token(store, f"Bearer {made.token}")
    with store.read() as conn:
        assert service.permitted(conn, access=token.access, permission="reports.read")
        assert not service.permitted(conn, access=token.access, permission="profiles.read")
        assert tokens.list_tokens(conn, business_id=business_id)[0].last_used_at is not None
        assert service.check_asset(
            conn, access=token.access, asset_id=pixel, kind="pixel", task="manage"
        )


def test_partners_share_assets_their_admins_assign_and_revocation_takes_it_back(
    store: Store,
) -> None:
    owner = _person(store, "ann@acme.test")
    business_id = _business(store, owner)
    pixel = _pixel(store, business_id, "Shop")
    agency_admin = _person(store, "ag@agency.test")
    agency_id = _business(store, agency_admin, "Agency")
    agency_staff = _invite_and_accept(store, agency_id, "staff@agency.test", {})
    staff = _access(store, agency_id, agency_staff)
    with store.read() as conn, pytest.raises(NotFound):
        service.check_asset(
            conn,
            access=_access(store, agency_id, agency_admin),
            asset_id=pixel,
            kind="pixel",
            task="analyse",
        )
    with store.write() as conn:
        share = team.share_with_partner(
            conn,
            business_id=business_id,
            data=PartnerShareIn(partner_business_id=agency_id, asset_id=pixel, tasks=["analyse"]),
            by=Access(business_id=business_id, role="admin"),
            actor=_actor(owner),
            ip=None,
        )
        team.set_grants(
            conn,
            business_id=agency_id,
            person_id=agency_staff.id,
            grants={pixel: ["analyse"]},
            by=Access(business_id=agency_id, role="admin"),
            actor=_actor(agency_admin),
            ip=None,
        )
    with store.read() as conn:
        assert (
            service.check_asset(conn, access=staff, asset_id=pixel, kind="pixel", task="analyse")
            == business_id
        )
        with pytest.raises(NotFound):
            service.check_asset(conn, access=staff, asset_id=pixel, kind="pixel", task="manage")
    with store.write() as conn:
        team.revoke_share(
            conn, business_id=business_id, share_id=share.id, actor=_actor(owner), ip=None
        )
    with store.read() as conn, pytest.raises(NotFound):
        service.check_asset(conn, access=staff, asset_id=pixel, kind="pixel", task="analyse")


def test_audit_log_records_who_what_and_filters(store: Store) -> None:
    owner = _person(store, "ann@acme.test")
    business_id = _business(store, owner)
    with store.write() as conn:
        pixel = assets.create_pixel(
            conn,
            business_id=business_id,
            name="Shop",
            kind="web",
            max_pixels=10,
            actor=_actor(owner),
            ip="10.1.1.1",
        )
        assets.set_pixel_enabled(
            conn,
            business_id=business_id,
            pixel_id=pixel.id,
            enabled=False,
            max_pixels=10,
            actor=_actor(owner),
            ip="10.1.1.1",
        )
    with store.read() as conn:
        entries = service.audit_entries(conn, business_id=business_id, action="pixel.")
        everything = service.audit_entries(conn, business_id=business_id)
        assert service.audit_entries(conn, business_id="biz_other") == []
    assert [e.action for e in entries] == ["pixel.disable", "pixel.create"]
    assert entries[0].before == {"enabled": True} and entries[0].after == {"enabled": False}
    assert entries[0].actor_label == "ann@acme.test" and entries[0].ip == "10.1.1.1"
    assert entries[0].asset_kind == "pixel" and entries[0].asset_id == pixel.id
    assert everything[-1].action == "business.create"


def test_later_contexts_register_their_own_asset_kinds(store: Store) -> None:
    owner = _person(store, "ann@acme.test")
    business_id = _business(store, owner)
    with store.write() as conn:
        form_id = service.register_asset(
            conn, business_id=business_id, kind="lead_form", name="Newsletter"
        )
    employee = _invite_and_accept(store, business_id, "bob@acme.test", {form_id: ["manage_leads"]})
    with store.read() as conn:
        access = _access(store, business_id, employee)
        assert service.check_asset(
            conn, access=access, asset_id=form_id, kind="lead_form", task="manage_leads"
        )
        # The task opens the asset, not the business's leads (issue 19 item 4).
        assert service.permitted(conn, access=access, permission="assets.read")
        assert not service.permitted(conn, access=access, permission="leads.manage")
        assert not service.permitted(conn, access=access, permission="email.manage")
