# -*- test-case-name: sipedge.test.test_reload_keys -*-
"""Tests for L{sipedge._reload_keys}: which keys a reload applies."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from sipedge._reload_keys import LIVE, split_config
from sipedge.config import SECTIONS, Config, parse_config


def _config(**sections: Any) -> Config:
    data = {"sip": {"domains": ["lab.test"]}, **sections}
    return parse_config(data)


class SplitTests(SynchronousTestCase):
    """L{split_config}."""

    def test_same(self) -> None:
        """The same configuration: nothing applied, nothing to restart, the same object."""
        config = _config()
        split = split_config(config, _config())
        self.assertIs(split.running, config)
        self.assertEqual((split.applied, split.needs_restart, split.changes), ((), (), ()))

    def test_live_and_restart(self) -> None:
        """
        A live key takes the file's value; a restart key keeps the running
        one and is reported with both values.
        """
        old = _config()
        new = _config(security={"flood_threshold": 7}, state={"path": "/elsewhere"})
        split = split_config(old, new)
        self.assertEqual(split.applied, ("security.flood_threshold",))
        self.assertEqual(split.changes, ("security.flood_threshold: 3 -> 7",))
        self.assertEqual(
            split.needs_restart,
            ("state.path: needs a restart (running with 'sipedge-state', the file has"
             " '/elsewhere')",),
        )
        self.assertEqual(split.running.security.flood_threshold, 7)
        self.assertEqual(split.running.state, old.state)

    def test_security_structure(self) -> None:
        """The monitor's window needs a restart; its thresholds do not."""
        new = _config(security={"monitor": {"window": 120, "request_rate": 10}})
        split = split_config(_config(), new)
        self.assertEqual(split.applied, ("security.monitor.request_rate",))
        self.assertEqual(len(split.needs_restart), 1)
        self.assertTrue(split.needs_restart[0].startswith("security.monitor.window:"))
        self.assertEqual(split.running.security.monitor.window, 60.0)
        self.assertEqual(split.running.security.monitor.request_rate, 10)

    def test_media_anchor_options(self) -> None:
        """
        The media-anchor stage's options keep their running value; the
        other stages' options change with them.
        """
        new = _config(pipeline={"options": {"media-anchor": {"srtp": "rekey"},
                                            "sanity": {"supported": ["path"]}}})
        split = split_config(_config(), new)
        self.assertEqual(split.applied, ("pipeline",))
        self.assertEqual(dict(split.running.pipeline.options), {"sanity": {"supported": ["path"]}})
        [line] = split.needs_restart
        self.assertTrue(line.startswith("pipeline.options.media-anchor: needs a restart"))

    def test_media_anchor_removed(self) -> None:
        """A chain without media-anchor (or with it added) waits for a restart, whole."""
        stages = [s for s in Config().pipeline.stages if s != "media-anchor"]
        split = split_config(_config(), _config(pipeline={"stages": stages}))
        self.assertEqual(split.applied, ())
        self.assertIn("media-anchor", split.running.pipeline.stages)
        self.assertTrue(split.needs_restart[0].startswith("pipeline.stages: needs a restart"))

    def test_live_keys_exist(self) -> None:
        """Every key L{LIVE} names is a section or a key of one."""
        from attrs import fields_dict

        for key in LIVE:
            section, _, name = key.partition(".")
            if section == "routes":
                continue
            self.assertIn(section, SECTIONS)
            if name:
                self.assertIn(name, fields_dict(SECTIONS[section]), key)
