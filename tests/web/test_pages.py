"""Every dashboard page in a real browser over a seeded server: no console errors, seeded figures."""

from __future__ import annotations

import json

import pytest

PAGES = ["/ui/deployments", "/ui/deployments/support", "/ui/deployments/support?window=24h",
         "/ui/deployments/support?window=7d&cohort=pro", "/ui/gates", "/ui/releases", "/ui/datasets",
         "/ui/datasets/support", "/ui/traces", "/ui/traces?cohort=free"]


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_without_console_errors(tab, path):
    response = tab.open(path)
    assert response.status == 200
    assert tab.page.locator("h1").count() == 1
    assert tab.errors == []


def test_gate_detail_pages_load_without_console_errors(tab, seeded):
    for gate in (seeded.fail_gate, seeded.pass_gate):
        assert tab.open(f"/ui/gates/{gate}").status == 200
    assert tab.errors == []


def _row_cells(tab, table: str, **attrs) -> list[str]:
    selector = f"{table} tr" + "".join(f'[data-{k}="{v}"]' for k, v in attrs.items())
    return tab.page.locator(selector).first.locator("td").all_inner_texts()


def test_deployment_page_shows_seeded_traffic_per_arm(tab, seeded):
    tab.open("/ui/deployments/support")
    assert set(seeded.routes) == {"stable", "canary"}, seeded.routes  # 40 users at 50 % reach both arms
    for route, n in seeded.routes.items():
        cells = _row_cells(tab, "#by-arm", route=route)
        assert cells[0] == route and cells[1] == f"{n:,}", cells
        assert cells[2] == f"{seeded.errors[route] / n * 100:.1f}%", cells
    for (route, cohort), n in seeded.route_cohort.items():
        cells = _row_cells(tab, "#by-cohort", route=route, cohort=cohort)
        assert cells[2] == f"{n:,}", cells
    assert tab.errors == []


def test_deployment_charts_are_drawn_with_the_seeded_figures(tab, seeded):
    tab.open("/ui/deployments/support")
    for chart in ("chart-latency", "chart-errors", "chart-evals", "chart-requests"):
        el = tab.page.locator(f"#{chart}")
        el.locator("canvas").wait_for()
        assert el.get_attribute("data-ready") == "1"
        assert int(el.get_attribute("data-points")) > 0
        assert "time (UTC)" in el.inner_text()
    spec = json.loads(tab.page.locator("#chart-requests-data").text_content())
    drawn = {s["label"]: sum(v for v in s["values"] if v) for s in spec["series"]}
    assert drawn == dict(seeded.routes)
    legend = tab.page.locator("#chart-latency .u-legend").inner_text()
    assert "stable" in legend and "canary" in legend
    assert tab.errors == []


def test_deployment_page_counts_feedback_and_evaluator_fails(tab, seeded):
    tab.open("/ui/deployments/support")
    for route in seeded.routes:
        downs = sum(1 for t in seeded.thumbs_down if seeded.traces[t][0] == route)
        cells = _row_cells(tab, "#by-arm", route=route)
        assert f"({downs} down / 0 up)" in cells[7], cells
        judged = sum(1 for t in seeded.evaluated if seeded.traces[t][0] == route)
        failed = sum(1 for t in seeded.failed_evals if seeded.traces[t][0] == route)
        assert cells[6] == f"{failed / judged * 100:.1f}% of {judged}", cells
    assert seeded.failed_evals and seeded.thumbs_down


def test_overview_lists_the_canary_and_its_weight(tab, seeded):
    tab.open("/ui/deployments")
    card = tab.page.locator('.deployment[data-deployment="support"]')
    text = card.inner_text()
    assert "chat@2.0" in text and "50.0% of users" in text
    assert seeded.releases["chat@2.0"][7:19] in text
    assert tab.errors == []


def test_failing_gate_shows_the_regressed_cohort_and_rows(tab, seeded):
    tab.open(f"/ui/gates/{seeded.fail_gate}")
    assert tab.page.locator("#verdict").inner_text().startswith("FAIL")
    statuses = tab.page.locator('#gate-table tr[data-cohort="billing"] td.l.s-fail').count()
    assert statuses >= 1
    rows = tab.page.locator(".regressed-row")
    assert rows.count() > 0
    first = rows.first
    assert first.locator(".baseline-output").inner_text().strip()
    assert first.locator(".candidate-output").inner_text().strip()
    assert "context" in first.inner_text()


def test_passing_gate_shows_pass(tab, seeded):
    tab.open(f"/ui/gates/{seeded.pass_gate}")
    assert tab.page.locator("#verdict").inner_text().startswith("PASS")
    assert tab.page.locator("#gate-latency tr").count() >= 2


def test_release_diff_of_two_releases(tab, seeded):
    a, b = seeded.releases["chat@1.0"], seeded.releases["chat@2.0"]
    assert tab.open(f"/ui/releases/diff?a={a}&b={b}").status == 200
    text = tab.page.locator("#changes").inner_text()
    assert "components.responder.model" in text and "model-1.0" in text and "model-2.0" in text
    assert tab.errors == []


def test_release_diff_form_from_the_list(tab, seeded):
    tab.open("/ui/releases")
    tab.page.locator('#diff-form select[name="a"]').select_option(seeded.releases["chat@1.0"])
    tab.page.locator('#diff-form select[name="b"]').select_option(seeded.releases["chat@2.0"])
    tab.page.locator("#diff-form button").click()
    tab.page.wait_for_url("**/ui/releases/diff**")
    assert "model-2.0" in tab.page.locator("#changes").inner_text()


def test_dataset_page_shows_the_cohort_mix(tab, seeded):
    tab.open("/ui/datasets/support")
    ds = seeded.store.get_dataset("support")
    for cohort, n in ds.cohorts.items():
        assert _row_cells(tab, "#cohort-mix", cohort=cohort)[1] == str(n)


def test_trace_search_filters_by_cohort_and_route(tab, seeded):
    tab.open("/ui/traces?deployment=support&cohort=pro&route=canary")
    links = tab.page.locator("#trace-results a").all_inner_texts()
    expected = {t for t, (r, c) in seeded.traces.items() if r == "canary" and c == "pro"}
    assert set(links) == expected


def test_trace_page_shows_spans_evaluations_and_feedback(tab, seeded):
    trace = next(t for t in seeded.failed_evals if t in seeded.thumbs_down) if \
        set(seeded.failed_evals) & set(seeded.thumbs_down) else seeded.failed_evals[0]
    assert tab.open(f"/ui/traces/{trace}").status == 200
    assert tab.page.locator("#span-tree .span").count() >= 1
    assert "groundedness" in tab.page.locator("#trace-evals").inner_text()
    assert "fail" in tab.page.locator("#trace-evals").inner_text()
    if trace in seeded.thumbs_down:
        assert "thumbs_down" in tab.page.locator("#trace-feedback").inner_text()
    assert tab.errors == []


@pytest.mark.parametrize("bad", ["not-a-trace", "0" * 32, "f" * 32])
def test_bad_trace_id_gives_a_clear_page(tab, bad):
    response = tab.open(f"/ui/traces/{bad}")
    assert response.status == 404
    assert "No such trace" in tab.page.locator("h1").inner_text()
    assert bad in tab.page.locator("#message").inner_text()


def test_unknown_gate_and_deployment_are_404_pages(tab):
    assert tab.open("/ui/gates/gate-nope").status == 404
    assert "no gate" in tab.page.locator("#message").inner_text()
    assert tab.open("/ui/deployments/nope").status == 404
    assert "no deployment 'nope'" in tab.page.locator("#message").inner_text()


def test_audit_pages(tab, seeded):
    assert tab.open("/ui/audit").status == 200
    assert "Audit" in tab.page.locator("header nav").inner_text()
    trace = next(t for t, (route, _) in seeded.traces.items() if route == "canary")
    assert tab.open(f"/ui/audit/{trace}").status == 200
    answer = tab.page.locator("#audit-answer").inner_text()
    assert "canary" in answer and seeded.releases["chat@2.0"] in answer
    assert tab.errors == []
    assert tab.open("/ui/audit/" + "e" * 32).status == 404
    assert "nothing to audit" in tab.page.locator("#message").inner_text()


def test_trace_link_time_hint_is_only_a_hint(tab, seeded):
    trace = sorted(seeded.traces)[0]
    assert tab.open(f"/ui/traces/{trace}?t=1").status == 200  # a wrong hint: found by the full lookup
    assert tab.page.locator("#span-tree .span").count() >= 1


def test_rollout_page_shows_timeline_comparison_and_log(tab, seeded):
    assert tab.open("/ui/rollouts").status == 200
    assert seeded.rollout in tab.page.locator("#rollouts").inner_text()
    assert tab.open(f"/ui/rollouts/{seeded.rollout}").status == 200
    assert tab.page.locator("#timeline tr").count() == 3  # header + two steps
    assert "current" in tab.page.locator("#timeline").inner_text()
    assert "forced_start" in tab.page.locator("#decisions").inner_text()
    charts = tab.page.locator("[data-chart]")
    assert charts.count() == 4  # error rate and p99 for each of the two cohorts
    for i in range(charts.count()):
        charts.nth(i).locator("canvas").wait_for()
    spec = json.loads(tab.page.locator("#chart-err-1-data").text_content())
    labels = [s["label"] for s in spec["series"]]
    assert labels == ["stable", "stable 95% low", "stable 95% high", "canary", "canary 95% low", "canary 95% high"]
    assert tab.errors == []


def test_clicking_pause_pauses_the_rollout(tab, seeded):
    tab.open(f"/ui/rollouts/{seeded.rollout}")
    assert tab.page.locator("#rollout-status").inner_text() == "running"
    dialogs: list[str] = []
    tab.page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    tab.page.locator("#action-pause").click()  # dismissed: nothing happens
    assert dialogs and "Pause rollout" in dialogs[0]
    assert seeded.store.db.query_one("SELECT status FROM rollouts WHERE id = ?", [seeded.rollout])[0] == "running"
    tab.page.once("dialog", lambda d: d.accept())
    tab.page.locator('#rollout-actions input[name="reason"]').first.fill("looks odd")
    with tab.page.expect_navigation():
        tab.page.locator("#action-pause").click()
    assert tab.page.locator("#rollout-status").inner_text() == "paused"
    assert seeded.store.db.query_one("SELECT status FROM rollouts WHERE id = ?", [seeded.rollout])[0] == "paused"
    assert "looks odd" in tab.page.locator("#decisions").inner_text()
    assert tab.page.locator("#action-resume").count() == 1
