# -*- test-case-name: sipedge.test.test_tap -*-
"""
Tests for L{sipedge.tap}: the options of C{twistd sipedge}, parsed without
a reactor (cf. C{twisted/names/test/test_tap.py}).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from sipedge import tap
from sipedge.config import DEFAULT_CONFIG, Listener
from sipedge.error import ConfigError
from sipedge.tap import Options, makeService

CONFIG = """\
[sip]
domains = ["sipedge.test"]
listen = ["udp:127.0.0.1:5070", "tcp:127.0.0.1:5070"]

[state]
path = "state"
"""


class OptionsTests(SynchronousTestCase):
    """Tests for L{Options}."""

    def write(self, text: str) -> Path:
        """Write C{text} to C{sipedge.toml} in a new directory; return its path."""
        directory = Path(self.mktemp())
        directory.mkdir()
        path = directory / "sipedge.toml"
        path.write_text(text)
        return path

    def parse(self, *argv: str) -> Options:
        """Parse C{argv} with a new L{Options}."""
        options = Options()
        options.parseOptions(list(argv))
        return options

    def usage_error(self, *argv: str) -> str:
        """Parse C{argv}, expecting L{UsageError}; return its message."""
        with self.assertRaises(UsageError) as raised:
            self.parse(*argv)
        return str(raised.exception)

    def test_defaults(self) -> None:
        """If no option is given, L{Options.config} is the embedded default."""
        options = self.parse()
        self.assertEqual(options.config, DEFAULT_CONFIG)
        self.assertIsNone(options["config"])
        self.assertIsNone(options["state"])
        self.assertEqual(options["listen"], [])
        self.assertEqual(options["domain"], [])

    def test_defaults_not_shared(self) -> None:
        """If one L{Options} gathers C{--listen}, another does not see it."""
        self.parse("--listen", "udp:127.0.0.1:5070")
        self.assertEqual(Options()["listen"], [])

    def test_config(self) -> None:
        """
        If C{--config FILE} is given, L{Options.config} is read from it, with
        relative paths relative to the file's directory.
        """
        path = self.write(CONFIG)
        config = self.parse("--config", str(path)).config
        self.assertEqual(config.sip.domains, ("sipedge.test",))
        self.assertEqual(
            config.listeners,
            (Listener("udp", "127.0.0.1", 5070), Listener("tcp", "127.0.0.1", 5070)),
        )
        self.assertEqual(config.state.path, path.parent.absolute() / "state")
        self.assertEqual(config.pipeline, DEFAULT_CONFIG.pipeline)

    def test_config_short(self) -> None:
        """If C{-c FILE} is given, L{Options} reads C{FILE} as C{--config} does."""
        path = self.write(CONFIG)
        self.assertEqual(
            self.parse("-c", str(path)).config, self.parse("--config", str(path)).config
        )

    def test_listen_repeated(self) -> None:
        """
        If C{--listen} is repeated, the listeners replace C{sip.listen}, in the
        order given.
        """
        config = self.parse("--listen", "udp:127.0.0.1:5080", "--listen", "TLS:[::1]:5081").config
        self.assertEqual(
            config.listeners,
            (Listener("udp", "127.0.0.1", 5080), Listener("tls", "::1", 5081)),
        )

    def test_listen_overrides_config(self) -> None:
        """If C{--listen} and C{--config} are both given, C{--listen} wins."""
        path = self.write(CONFIG)
        config = self.parse("--config", str(path), "--listen", "tcp:0.0.0.0:0").config
        self.assertEqual(config.listeners, (Listener("tcp", "0.0.0.0", 0),))
        self.assertEqual(config.sip.domains, ("sipedge.test",))

    def test_domain(self) -> None:
        """If C{--domain} is repeated, the domains replace C{sip.domains}, normalized."""
        path = self.write(CONFIG)
        config = self.parse(
            "--config", str(path), "--domain", "Example.COM.", "--domain", "192.0.2.1"
        ).config
        self.assertEqual(config.sip.domains, ("example.com", "192.0.2.1"))

    def test_state(self) -> None:
        """
        If C{--state DIR} is given, it replaces C{state.path}, made absolute
        against the current directory.
        """
        path = self.write(CONFIG)
        config = self.parse("--config", str(path), "--state", "elsewhere").config
        self.assertEqual(config.state.path, Path(os.getcwd(), "elsewhere"))
        self.assertTrue(config.state.path.is_absolute())

    def test_state_short(self) -> None:
        """If C{-s DIR} is given, it sets the state directory as C{--state} does."""
        directory = Path(self.mktemp()).absolute()
        self.assertEqual(self.parse("-s", str(directory)).config.state.path, directory)

    def test_bad_listen(self) -> None:
        """If a C{--listen} spec is bad, L{UsageError} names the spec and the fault."""
        message = self.usage_error("--listen", "sctp:127.0.0.1:5060")
        self.assertIn("--listen sctp:127.0.0.1:5060", message)
        self.assertIn("bad transport 'sctp'", message)

    def test_listen_host_name(self) -> None:
        """If a C{--listen} host is a name, not an address, L{UsageError} says so."""
        message = self.usage_error("--listen", "udp:example.com:5060")
        self.assertIn("a listener's host must be an IP address", message)

    def test_listen_missing_port(self) -> None:
        """If a C{--listen} spec has no port, L{UsageError} says so."""
        message = self.usage_error("--listen", "udp:127.0.0.1")
        self.assertIn("missing port", message)

    def test_listen_same_address(self) -> None:
        """If two C{--listen} specs share an address, L{UsageError} names the second."""
        message = self.usage_error(
            "--listen", "udp:127.0.0.1:5060", "--listen", "udp:127.0.0.1:5060"
        )
        self.assertIn("listen[1]", message)

    def test_bad_domain(self) -> None:
        """If a C{--domain} is not a host, L{UsageError} quotes it."""
        message = self.usage_error("--domain", "not a host!")
        self.assertIn("'not a host!' is not a valid host name", message)

    def test_unknown_key(self) -> None:
        """
        If the file has an unknown key, L{UsageError} names the file and the
        key, and suggests the closest known one.
        """
        path = self.write('[sip]\nlisen = ["udp:127.0.0.1:5060"]\n')
        message = self.usage_error("--config", str(path))
        self.assertEqual(message, f"{path}: sip.lisen: unknown key; did you mean 'listen'?")

    def test_bad_value(self) -> None:
        """If the file has a bad value, L{UsageError} names the key with its index."""
        path = self.write('[sip]\nlisten = ["udp:127.0.0.1:5060", "sctp:10.0.0.1:5060"]\n')
        message = self.usage_error("--config", str(path))
        self.assertTrue(message.startswith(f"{path}: sip.listen[1]: bad transport"), message)

    def test_missing_file(self) -> None:
        """If the file does not exist, L{UsageError} names it."""
        path = Path(self.mktemp())
        message = self.usage_error("--config", str(path))
        self.assertEqual(
            message, f"{path}: cannot read configuration file: No such file or directory"
        )

    def test_unreadable_file(self) -> None:
        """If the file cannot be read (a directory here), L{UsageError} names it."""
        directory = Path(self.mktemp())
        directory.mkdir()
        message = self.usage_error("--config", str(directory))
        self.assertTrue(
            message.startswith(f"{directory}: cannot read configuration file:"), message
        )

    def test_invalid_toml(self) -> None:
        """If the file is not TOML, L{UsageError} names it."""
        path = self.write("[sip\n")
        self.assertTrue(self.usage_error("--config", str(path)).startswith(f"{path}: invalid TOML"))

    def test_unknown_option(self) -> None:
        """If an option is unknown, L{UsageError} is raised."""
        self.usage_error("--lisen", "udp:127.0.0.1:5060")


class MakeServiceTests(SynchronousTestCase):
    """Tests for L{makeService}."""

    def test_global_reactor(self) -> None:
        """
        L{makeService} builds the service from L{Options.config} on the
        global reactor (the only place it is used), and asks it to reload
        on SIGHUP.
        """
        from types import SimpleNamespace

        from twisted.internet import reactor

        import sipedge.service

        calls: list[tuple[Any, Any]] = []
        built = SimpleNamespace(reload_on_sighup=False)

        def build_service(config: Any, reactor: Any) -> object:
            calls.append((config, reactor))
            return built

        self.patch(sipedge.service, "build_service", build_service)
        directory = Path(self.mktemp())
        directory.mkdir()
        path = directory / "sipedge.toml"
        path.write_text("[process]\nworkers = 1\n")  # one process: no supervisor
        options = Options()
        options.parseOptions(["--config", str(path), "--listen", "udp:127.0.0.1:0"])
        self.assertIs(makeService(options), built)
        self.assertEqual(calls, [(options.config, reactor)])
        self.assertTrue(built.reload_on_sighup)

    def test_config_source(self) -> None:
        """
        The service reads its file again on reload: by its absolute path,
        with the command line's overrides applied again.
        """
        from types import SimpleNamespace

        import sipedge.service

        built = SimpleNamespace(reload_on_sighup=False)
        self.patch(sipedge.service, "build_service", lambda config, reactor: built)
        directory = Path(self.mktemp())
        directory.mkdir()
        path = directory / "sipedge.toml"
        path.write_text('[sip]\ndomains = ["file.test"]\n[process]\nworkers = 1\n')
        options = Options()
        options.parseOptions(["--config", str(path), "--listen", "udp:127.0.0.1:0"])
        makeService(options)
        source = built.config_source
        self.assertEqual(source.path, str(path.absolute()))
        path.write_text('[sip]\ndomains = ["other.test"]\n')
        config = source.load()
        self.assertEqual(config.sip.domains, ("other.test",))
        self.assertEqual([str(listener) for listener in config.listeners], ["udp:127.0.0.1:0"])

    def test_exports(self) -> None:
        """L{sipedge.tap} exports what C{ServiceMaker} looks up: C{Options}, C{makeService}."""
        self.assertEqual(sorted(tap.__all__), ["Options", "makeService"])


class WorkerOptionsTests(SynchronousTestCase):
    """C{[process] workers}: the supervisor, and a worker's own command line."""

    def options(self, *argv: str, workers: int = 2) -> Options:
        directory = Path(self.mktemp())
        directory.mkdir()
        path = directory / "sipedge.toml"
        path.write_text(CONFIG + f"[process]\nworkers = {workers}\n")
        options = Options()
        options.parseOptions(["--config", str(path), *argv])
        return options

    def test_supervisor(self) -> None:
        """
        With C{workers} above 1, L{makeService} builds a supervisor of that
        many workers (nothing bound yet), which reloads on SIGHUP.
        """
        from sipedge.worker_service import SupervisorService

        service = makeService(self.options())
        self.assertIsInstance(service, SupervisorService)
        self.assertEqual(service.count, 2)
        self.assertTrue(service.reload_on_sighup)

    def test_worker_command(self) -> None:
        """
        A worker runs C{twistd sipedge} in the foreground, logging to its
        output, with the supervisor's options (paths made absolute) and
        its spec.
        """
        from sipedge.process import WorkerSpec

        options = self.options("--domain", "other.test", "--listen", "udp:127.0.0.1:5090")
        spec = WorkerSpec(1, 2, (), ((), ()))
        argv = tap._worker_command(options, spec)
        self.assertIn("--nodaemon", argv)
        self.assertIn("--logfile=-", argv)
        self.assertEqual(argv[argv.index("--config") + 1], os.path.abspath(options["config"]))
        self.assertEqual(argv[argv.index("--domain") + 1], "other.test")
        self.assertEqual(argv[argv.index("--listen") + 1], "udp:127.0.0.1:5090")
        self.assertTrue(Path(argv[argv.index("--state") + 1]).is_absolute())
        self.assertEqual(WorkerSpec.decode(argv[argv.index("--worker") + 1]), spec)
        reparsed = Options()
        reparsed.parseOptions(argv[argv.index("sipedge") + 1:])
        self.assertEqual(reparsed.config, options.config)
        self.assertTrue(reparsed["hold"])

    def test_worker_zero_not_held(self) -> None:
        """
        Worker 0 makes the shared state: its command line does not hold it
        (C{--hold}), every other worker's does.
        """
        from sipedge.process import WorkerSpec

        options = self.options()
        for index, held in ((0, False), (1, True), (2, True)):
            argv = tap._worker_command(options, WorkerSpec(index, 3, (), ((), (), ())))
            self.assertEqual("--hold" in argv, held, index)

    def test_held_worker_waits(self) -> None:
        """
        A worker started with C{--hold} waits for the supervisor's word
        (L{sipedge.process.wait_released}) before it builds anything.
        """
        import sipedge.process
        import sipedge.worker_service
        from sipedge.process import WorkerSpec

        steps: list[str] = []
        self.patch(sipedge.process, "wait_released", lambda: steps.append("waited"))

        def worker(config: object, reactor: object, spec: WorkerSpec) -> object:
            steps.append(f"built {spec.index}")
            raise ConfigError("stop here")

        self.patch(sipedge.worker_service, "WorkerService", worker)
        spec = WorkerSpec(1, 2, (), ((), ())).encode()
        self.assertRaises(SystemExit, makeService, self.options("--worker", spec, "--hold"))
        self.assertEqual(steps, ["waited", "built 1"])
        steps.clear()
        self.assertRaises(SystemExit, makeService, self.options("--worker", spec))
        self.assertEqual(steps, ["built 1"])

    def test_bad_worker_spec(self) -> None:
        """A C{--worker} value that is not a spec stops start-up saying so."""
        options = self.options("--worker", "nonsense")
        error = self.assertRaises(SystemExit, makeService, options)
        self.assertIn("--worker: not a worker spec", str(error))

    def test_default_one_worker_per_core(self) -> None:
        """
        With the defaults (C{workers = "auto"}), L{makeService} builds a
        supervisor of one worker per core, or the plain service on one core.
        """
        from types import SimpleNamespace

        import sipedge.service
        from sipedge.worker_service import SupervisorService

        built = SimpleNamespace(reload_on_sighup=False)
        self.patch(sipedge.service, "build_service", lambda config, reactor: built)
        for cores, expected in ((1, None), (2, 2), (16, 16)):
            self.patch(os, "sched_getaffinity", lambda pid, n=cores: set(range(n)))
            options = Options()
            options.parseOptions(["--listen", "udp:127.0.0.1:0"])
            service = makeService(options)
            if expected is None:
                self.assertIs(service, built)
            else:
                self.assertIsInstance(service, SupervisorService)
                self.assertEqual(service.count, expected)

    def test_one_worker_is_one_process(self) -> None:
        """C{workers = 1} builds the plain service, as before."""
        from types import SimpleNamespace

        import sipedge.service

        built = SimpleNamespace(reload_on_sighup=False)
        self.patch(sipedge.service, "build_service", lambda config, reactor: built)
        self.assertIs(makeService(self.options(workers=1)), built)
