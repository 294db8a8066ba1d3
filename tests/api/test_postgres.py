"""The API's main stories once more on PostgreSQL (``PCIFLEET_TEST_PG_URL``), the
back end several controllers share: same migrations, same answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from pcifleet.api.app import create_app
from pcifleet.store.db import make_engine, upgrade
from tests.api import (
    test_bulk_create,
    test_db_paging,
    test_host_routes,
    test_identity_domains,
    test_keypairs,
    test_lock,
    test_move_disks,
    test_ports,
    test_probes,
    test_rebuild,
    test_server_views,
    test_servers,
)
from tests.api.conftest import (
    Tokens,
    in_process_client,
    issue_tokens,
    make_settings,
    seed_users,
)
from tests.api.helpers import Api
from tests.store.pg import fresh_schema, pg_url_or_skip


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    with fresh_schema(pg_url_or_skip()) as url:
        engine = make_engine(url)
        upgrade(engine)
        seed_users(engine)
        yield engine
        engine.dispose()


@pytest.fixture
def pg_api(pg_engine: Engine, tmp_path: Path) -> Iterator[tuple[Api, Tokens]]:
    app = create_app(make_settings(str(pg_engine.url), tmp_path), pg_engine)
    with in_process_client(app) as api:
        yield api, issue_tokens(api)


def test_boot_story_on_postgresql(pg_api: tuple[Api, Tokens], pg_engine: Engine) -> None:
    api, tokens = pg_api
    test_servers.test_sriov_port_boot_bind_build_delete_story(api, tokens, pg_engine)


def test_move_disk_hand_over_on_postgresql(
    pg_api: tuple[Api, Tokens], pg_engine: Engine, tmp_path: Path
) -> None:
    """The disk's compare and swap on the migration row, and its copy's life."""
    api, tokens = pg_api
    settings = make_settings(str(pg_engine.url), tmp_path)
    test_move_disks.test_the_destination_takes_the_disk_the_source_handed_over(
        api, tokens, pg_engine, settings
    )


def test_no_free_vf_on_postgresql(pg_api: tuple[Api, Tokens]) -> None:
    test_servers.test_no_free_vf_on_the_physical_network_is_error_with_fault(*pg_api)


def test_port_rules_on_postgresql(pg_api: tuple[Api, Tokens]) -> None:
    api, tokens = pg_api
    test_ports.test_fixed_ips_and_macs_conflict(api, tokens)
    test_ports.test_member_may_not_set_binding_profile_or_host(api, tokens)


def test_bulk_create_on_postgresql(pg_api: tuple[Api, Tokens]) -> None:
    """Every item or none where a port's addresses are taken under row locks and
    savepoints: the savepoints of a failed bulk roll back with it."""
    api, tokens = pg_api
    test_bulk_create.test_bulk_networks_come_back_in_order_and_are_listed(api, tokens)
    test_bulk_create.test_one_bad_network_makes_none(api, tokens)
    test_bulk_create.test_bulk_subnets_and_their_atomicity(api, tokens)
    test_bulk_create.test_bulk_ports_get_addresses_in_order(api, tokens)
    test_bulk_create.test_a_port_bulk_that_runs_out_of_addresses_makes_nothing(api, tokens)
    test_bulk_create.test_port_bulk_conflicts_inside_one_request_make_nothing(api, tokens)
    test_bulk_create.test_a_list_body_and_big_port_and_subnet_lists_are_refused(api, tokens)


def test_host_routes_and_subnet_updates_on_postgresql(pg_api: tuple[Api, Tokens]) -> None:
    api, tokens = pg_api
    test_host_routes.test_routes_are_stored_shown_listed_and_replaced(api, tokens)
    test_host_routes.test_tempests_gateway_dns_routes_and_dhcp_update(api, tokens)
    test_host_routes.test_gateway_moves_under_neutrons_rules(api, tokens)
    test_host_routes.test_dns_nameservers_are_checked_on_create_and_update(api, tokens)
    for routes, names in (
        (test_host_routes.TEN_THOUSAND, "at most 1024 items"),
        ([{"destination": "fd00::/64", "nexthop": "10.90.0.1"}], "ip_version '4'"),
        ([{"destination": "10.0.0.0/8", "nexthop": "10.90.0.1\x00"}], "NUL"),
    ):
        test_host_routes.test_hostile_host_routes_are_refused_and_change_nothing(
            api, tokens, routes, names
        )


def test_domains_groups_and_implied_roles_on_postgresql(pg_api: tuple[Api, Tokens]) -> None:
    api, tokens = pg_api
    test_identity_domains.test_a_domain_holds_its_own_projects_and_users_and_goes_only_disabled(
        api, tokens
    )
    test_identity_domains.test_a_groups_role_counts_for_its_members(api, tokens)
    test_identity_domains.test_domain_scoped_tokens_and_the_domains_a_user_may_scope_to(api, tokens)
    test_identity_domains.test_role_inference_rules_and_domain_specific_roles(api, tokens)


def test_keypairs_on_postgresql(pg_api: tuple[Api, Tokens], pg_engine: Engine) -> None:
    api, tokens = pg_api
    test_keypairs.test_names_are_per_user_and_a_duplicate_is_409(api, tokens)
    test_keypairs.test_admins_manage_another_users_keypairs_from_2_10(api, tokens, pg_engine)
    test_keypairs.test_a_server_boots_with_its_users_keypair_and_shows_it(api, tokens)


def test_nul_characters_on_postgresql(pg_api: tuple[Api, Tokens]) -> None:
    api, tokens = pg_api
    test_probes.refuses_nul(api, tokens.admin)


def test_a_read_only_postgresql_says_so(pg_engine: Engine, tmp_path: Path) -> None:
    app = create_app(make_settings(str(pg_engine.url), tmp_path), pg_engine)
    with in_process_client(app) as api:
        admin = issue_tokens(api).admin

        @event.listens_for(pg_engine, "connect")
        def read_only(dbapi_conn: Any, _record: Any) -> None:
            with dbapi_conn.cursor() as cur:
                cur.execute("SET default_transaction_read_only = on")
            dbapi_conn.commit()

        pg_engine.dispose()  # new connections, read-only from now on
        test_probes.read_only_story(api, admin)


def test_lists_page_in_the_database_on_postgresql(pg_api: tuple[Api, Tokens]) -> None:
    api, tokens = pg_api
    test_db_paging.test_ports_walked_page_by_page_match_the_full_list(api, tokens)
    test_db_paging.test_os_pci_walked_by_id_markers(api, tokens)
    for query in ("limit=abc", "marker=nope", "marker=%27%20OR%201%3D1"):
        test_db_paging.test_hostile_paging_is_a_400(api, tokens, query)


def test_lock_on_postgresql(pg_api: tuple[Api, Tokens]) -> None:
    test_lock.test_an_owner_lock_refuses_the_owner_and_lets_an_admin_act(*pg_api)


def test_the_locked_filter_on_postgresql(pg_api: tuple[Api, Tokens]) -> None:
    test_lock.test_servers_are_listed_by_lock_from_2_73(*pg_api)


def test_rebuild_story_on_postgresql(pg_api: tuple[Api, Tokens]) -> None:
    test_rebuild.test_a_rebuild_keeps_host_ports_and_devices_and_takes_the_new_image(*pg_api)


def test_server_views_on_postgresql(pg_api: tuple[Api, Tokens]) -> None:
    # JSON columns read as text and the page's ids picked in a subquery
    api, tokens = pg_api
    fleet = test_server_views.make_fleet(api, tokens)
    test_server_views.test_every_entry_is_what_show_answers(api, tokens, fleet)
    test_server_views.test_keys_follow_the_microversion_and_the_caller(api, tokens, fleet)
    test_server_views.test_a_page_and_the_page_after_it_are_the_whole_list(api, tokens, fleet)
