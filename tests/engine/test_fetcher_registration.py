"""A kind module registers its own GitLab list call with `_gitlab.fetcher`; observation looks
calls up in the same table, and a resource cannot be claimed twice."""

from __future__ import annotations

import pytest

from reconciler.kinds import FetchError, fetcher_of
from reconciler.kinds._gitlab import FETCHERS, fetcher


def test_a_registered_fetcher_joins_the_table_observation_reads_and_cannot_be_registered_twice():
    def fetch_widgets(api, scope):
        return [{"scope": scope}]

    try:
        assert fetcher("widgets_for_test", required=("scope",))(fetch_widgets) is fetch_widgets
        assert fetcher_of("gitlab", "widgets_for_test")(None, "s") == [{"scope": "s"}]
        # registered with its answer's shape checked: a row without a required field is a list error
        fetcher("widgets_without_id_for_test")(fetch_widgets)
        assert isinstance(fetcher_of("gitlab", "widgets_without_id_for_test")(None, "s"), FetchError)
        with pytest.raises(RuntimeError, match="two GitLab fetchers for 'widgets_for_test'"):
            fetcher("widgets_for_test")(lambda api, scope: [])
        with pytest.raises(RuntimeError, match="two GitLab fetchers for 'project_variables'"):
            fetcher("project_variables")(fetch_widgets)
        assert FETCHERS["project_variables"] is not fetch_widgets
    finally:
        FETCHERS.pop("widgets_for_test", None)
        FETCHERS.pop("widgets_without_id_for_test", None)
