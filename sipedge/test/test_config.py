# -*- test-case-name: sipedge.test.test_config -*-
"""
Tests for L{sipedge.config}.
"""

from __future__ import annotations

import ipaddress
import operator
import os
import socket
from pathlib import Path
from typing import Any

import attrs
from twisted.logger import LogLevel
from twisted.trial.unittest import SynchronousTestCase

from sipedge.config import (
    DEFAULT_CONFIG,
    DEFAULT_LISTEN,
    DEFAULT_STAGES,
    Config,
    DialogsConfig,
    HostPort,
    LimitsConfig,
    Listener,
    LogConfig,
    PipelineConfig,
    RegistrarConfig,
    Route,
    SipConfig,
    StateConfig,
    TimersConfig,
    TlsConfig,
    TopologyHidingConfig,
    default_domains,
    load_config,
    parse_config,
)
from sipedge.error import ConfigError
from sipedge.message import Limits

ROOT = Path(__file__).parent.parent.parent

CONTRACT = """\
[sip]
domains = ["sipedge.test"]          # our domains: registrar + location service
listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060", "tls:127.0.0.1:5061"]
trusted = ["127.0.0.10/32"]         # networks allowed to relay to foreign destinations
[tls]
certificate = "cert.pem"            # absent: self-signed, generated in the state directory
private_key = "key.pem"
[state]
path = "sipedge-state"
"""


class ConfigErrorAssertions:
    """A mixin: assert that a configuration fails with a message."""

    def assertConfigError(
        self, data: Any, key: str, *fragments: str, source: str = "test.toml"
    ) -> str:
        """
        Parsing C{data} raises L{ConfigError} whose message starts with
        C{source: key: } and contains each of C{fragments}; return it.
        """
        case: Any = self
        error = case.assertRaises(ConfigError, parse_config, data, source)
        message = str(error)
        case.assertTrue(
            message.startswith(f"{source}: {key}: "),
            f"{message!r} does not start with {source + ': ' + key + ': '!r}",
        )
        for fragment in fragments:
            case.assertIn(fragment, message)
        case.assertNotIn("\n", message)
        return message


class DefaultTests(SynchronousTestCase):
    """Every key's default, in L{DEFAULT_CONFIG} and for an empty file."""

    def test_empty_is_default(self) -> None:
        """An empty document gives L{DEFAULT_CONFIG}."""
        self.assertEqual(parse_config({}), DEFAULT_CONFIG)
        self.assertEqual(Config(), DEFAULT_CONFIG)

    def test_empty_sections_are_default(self) -> None:
        """Empty sections give the defaults too."""
        data: dict[str, Any] = {
            name: {}
            for name in ("sip", "tls", "state", "limits", "timers", "registrar", "pipeline", "log")
        }
        data["routes"] = []
        self.assertEqual(parse_config(data), DEFAULT_CONFIG)

    def test_sip(self) -> None:
        """C{[sip]} defaults: any-address listeners on 5060/5061, nothing trusted."""
        sip = DEFAULT_CONFIG.sip
        self.assertEqual(sip.domains, default_domains())
        self.assertEqual(
            sip.listen,
            (
                Listener("udp", "0.0.0.0", 5060),
                Listener("tcp", "0.0.0.0", 5060),
                Listener("tls", "0.0.0.0", 5061),
            ),
        )
        self.assertEqual(tuple(str(listener) for listener in sip.listen), DEFAULT_LISTEN)
        self.assertEqual(DEFAULT_CONFIG.listeners, sip.listen)
        self.assertEqual(sip.trusted, ())
        self.assertIs(sip.record_route, True)
        self.assertIsNone(sip.advertise)
        self.assertEqual(sip.user_agent, "sipedge")
        self.assertEqual(sip.max_forwards, 70)

    def test_default_domains(self) -> None:
        """
        L{default_domains} is this machine's host name, lower-cased, and
        C{localhost}, without repeats.
        """
        self.patch(socket, "gethostname", lambda: "Edge1.Example.COM")
        self.assertEqual(default_domains(), ("edge1.example.com", "localhost"))
        self.assertEqual(SipConfig().domains, ("edge1.example.com", "localhost"))
        self.patch(socket, "gethostname", lambda: "localhost")
        self.assertEqual(default_domains(), ("localhost",))

    def test_default_domains_bad_hostname(self) -> None:
        """A host name that is no SIP host name is left out of the defaults."""
        self.patch(socket, "gethostname", lambda: "under_score")
        self.assertEqual(default_domains(), ("localhost",))

    def test_tls(self) -> None:
        """C{[tls]} defaults: self-signed, no CA file, no client verification."""
        tls = DEFAULT_CONFIG.tls
        self.assertIsNone(tls.certificate)
        self.assertIsNone(tls.private_key)
        self.assertIsNone(tls.ca_certificates)
        self.assertTrue(tls.self_signed)
        self.assertEqual(tls.verify_client, "none")
        self.assertIs(tls.verify_server, True)

    def test_state(self) -> None:
        """C{state.path} defaults to C{sipedge-state}, relative to the current directory."""
        self.assertEqual(DEFAULT_CONFIG.state.path, Path("sipedge-state"))
        self.assertFalse(DEFAULT_CONFIG.state.path.is_absolute())

    def test_limits(self) -> None:
        """C{[limits]} defaults, and those of L{Limits} agree."""
        limits = DEFAULT_CONFIG.limits
        self.assertEqual(
            attrs.asdict(limits),
            {
                "max_message_size": 65535,
                "max_body_size": 65535,
                "max_header_fields": 256,
                "max_line_length": 8192,
                "max_uri_length": 4096,
                "max_vias": 70,
                "idle_timeout": 300.0,
                "max_connections_per_source": 100,
                "max_connections": 10000,
            },
        )
        self.assertEqual(limits.message_limits, Limits())
        self.assertEqual(DEFAULT_CONFIG.message_limits, Limits())

    def test_timers(self) -> None:
        """C{[timers]} defaults are RFC 3261's."""
        self.assertEqual(
            DEFAULT_CONFIG.timers,
            TimersConfig(t1=0.5, t2=4.0, t4=5.0, timer_c=180.0, response_chain_timeout=5.0),
        )

    def test_registrar(self) -> None:
        """C{[registrar]} defaults: 60, 3600, 3600."""
        registrar = DEFAULT_CONFIG.registrar
        self.assertEqual(
            (registrar.min_expires, registrar.max_expires, registrar.default_expires),
            (60, 3600, 3600),
        )

    def test_routes(self) -> None:
        """No static routes by default."""
        self.assertEqual(DEFAULT_CONFIG.routes, ())

    def test_pipeline(self) -> None:
        """The default chain, and no stage options."""
        self.assertEqual(
            DEFAULT_CONFIG.pipeline.stages,
            (
                "ban-check",
                "scanner",
                "flood",
                "monitor",
                "filter",
                "sanity",
                "max-forwards",
                "loop-detect",
                "route",
                "digest-auth",
                "responsibility",
                "toll-fraud",
                "media-anchor",
                "registrar",
                "location",
                "static-route",
                "forward",
            ),
        )
        self.assertEqual(DEFAULT_CONFIG.pipeline.stages, DEFAULT_STAGES)
        self.assertEqual(dict(DEFAULT_CONFIG.pipeline.options), {})
        self.assertEqual(DEFAULT_CONFIG.pipeline.options_for("sanity"), {})

    def test_log(self) -> None:
        """C{[log]} defaults: info, text."""
        self.assertEqual(DEFAULT_CONFIG.log.level, "info")
        self.assertEqual(DEFAULT_CONFIG.log.log_level, LogLevel.info)
        self.assertEqual(DEFAULT_CONFIG.log.format, "text")

    def test_hashable_and_frozen(self) -> None:
        """A L{Config} is hashable, equal to an equal one, and frozen."""
        self.assertEqual(hash(parse_config({})), hash(DEFAULT_CONFIG))
        self.assertRaises(attrs.exceptions.FrozenInstanceError, setattr, DEFAULT_CONFIG, "sip", 1)
        self.assertRaises(
            attrs.exceptions.FrozenInstanceError, setattr, DEFAULT_CONFIG.sip, "domains", ()
        )


class ContractTests(SynchronousTestCase):
    """The documented example that acceptance checks use."""

    def test_contract(self) -> None:
        """The contract example loads, with paths relative to the file's directory."""
        directory = Path(self.mktemp())
        directory.mkdir()
        path = directory / "sipedge.toml"
        path.write_text(CONTRACT)
        config = load_config(path)
        base = Path(os.path.abspath(directory))
        self.assertEqual(config.sip.domains, ("sipedge.test",))
        self.assertEqual(
            config.listeners,
            (
                Listener("udp", "127.0.0.1", 5060),
                Listener("tcp", "127.0.0.1", 5060),
                Listener("tls", "127.0.0.1", 5061),
            ),
        )
        self.assertEqual(config.sip.trusted, (ipaddress.ip_network("127.0.0.10/32"),))
        self.assertTrue(config.sip.is_trusted("127.0.0.10"))
        self.assertTrue(config.sip.is_trusted("::ffff:127.0.0.10"))
        self.assertFalse(config.sip.is_trusted("127.0.0.11"))
        self.assertFalse(config.sip.is_trusted("sipedge.test"))
        self.assertEqual(config.tls.certificate, base / "cert.pem")
        self.assertEqual(config.tls.private_key, base / "key.pem")
        self.assertFalse(config.tls.self_signed)
        self.assertEqual(config.state.path, base / "sipedge-state")
        self.assertEqual(config.pipeline, DEFAULT_CONFIG.pipeline)
        hash(config)

    def test_example_file(self) -> None:
        """C{examples/sipedge.toml} loads."""
        config = load_config(ROOT / "examples" / "sipedge.toml")
        self.assertEqual(config.sip.domains, ("sipedge.test",))
        self.assertEqual(len(config.routes), 2)
        self.assertEqual(config.pipeline.options_for("sanity"), {"supported": []})

    if not (ROOT / "examples" / "sipedge.toml").exists():  # installed without the checkout
        test_example_file.skip = "not running from a checkout"  # type: ignore[attr-defined]


class DocumentationTests(SynchronousTestCase):
    """C{doc/configuration.md} and C{examples/sipedge.toml} keep up with the code."""

    def keys(self) -> list[str]:
        """Every key of every section, as C{section.key}."""
        sections = {
            "sip": SipConfig,
            "tls": TlsConfig,
            "state": StateConfig,
            "limits": LimitsConfig,
            "timers": TimersConfig,
            "registrar": RegistrarConfig,
            "routes": Route,
            "pipeline": PipelineConfig,
            "log": LogConfig,
            "dialogs": DialogsConfig,
            "topology_hiding": TopologyHidingConfig,
        }
        return [
            f"{section}.{field.name}"
            for section, kind in sections.items()
            for field in attrs.fields(kind)
        ]

    def test_documented(self) -> None:
        """Every section and key has a row in C{doc/configuration.md}."""
        text = (ROOT / "doc" / "configuration.md").read_text()
        for key in self.keys():
            section, name = key.split(".")
            self.assertIn(f"`[{section}]`" if section != "routes" else "`[[routes]]`", text)
            row = f"| `{name}` |" if name != "options" else "| `options.<stage>` |"
            self.assertIn(row, text, key)

    def test_in_example(self) -> None:
        """Every key appears (perhaps commented out) in C{examples/sipedge.toml}."""
        text = (ROOT / "examples" / "sipedge.toml").read_text()
        for key in self.keys():
            name = key.split(".")[1]
            if name == "options":
                self.assertIn("[pipeline.options.", text)
            else:
                self.assertIn(f"{name} = ", text, key)

    if not (ROOT / "doc" / "configuration.md").exists():  # installed without the checkout
        skip = "not running from a checkout"


class FileTests(SynchronousTestCase):
    """L{load_config}: reading the file."""

    def write(self, text: str | bytes, name: str = "sipedge.toml") -> Path:
        """Write C{text} to a new file; return its path."""
        directory = Path(self.mktemp())
        directory.mkdir()
        path = directory / name
        if isinstance(text, str):
            text = text.encode("utf-8")
        path.write_bytes(text)
        return path

    def test_missing_file(self) -> None:
        """A file that does not exist: the message names the file and the OS error."""
        path = Path(self.mktemp()) / "nothere.toml"
        error = self.assertRaises(ConfigError, load_config, path)
        self.assertEqual(
            str(error), f"{path}: cannot read configuration file: No such file or directory"
        )

    def test_directory(self) -> None:
        """A directory cannot be read as a file."""
        path = Path(self.mktemp())
        path.mkdir()
        error = self.assertRaises(ConfigError, load_config, str(path))
        self.assertTrue(str(error).startswith(f"{path}: cannot read configuration file: "))

    def test_unreadable_file(self) -> None:
        """A file without read permission: the message names the file and the OS error."""
        path = self.write("")
        path.chmod(0)
        self.addCleanup(path.chmod, 0o600)
        if os.access(path, os.R_OK):
            raise self.skipTest("running as a user who can read anything")
        error = self.assertRaises(ConfigError, load_config, path)
        self.assertEqual(str(error), f"{path}: cannot read configuration file: Permission denied")

    def test_permission_denied(self) -> None:
        """
        An OS error while opening the file (here a simulated C{EACCES}, as
        root can read anything) is reported with the file's name.
        """
        import builtins
        import errno

        real_open = builtins.open
        target = "/nonexistent/sipedge.toml"

        def refuse(path: Any, *args: Any, **kwargs: Any) -> Any:
            if os.fspath(path) == target:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), target)
            return real_open(path, *args, **kwargs)

        self.patch(builtins, "open", refuse)
        error = self.assertRaises(ConfigError, load_config, target)
        self.assertEqual(str(error), f"{target}: cannot read configuration file: Permission denied")

    def test_invalid_toml(self) -> None:
        """Invalid TOML: the message names the file, the line and the column."""
        path = self.write('[sip]\ndomains = ["a"\nuser_agent = "x"\n')
        error = self.assertRaises(ConfigError, load_config, path)
        message = str(error)
        self.assertTrue(message.startswith(f"{path}: invalid TOML: "), message)
        self.assertIn("line 3", message)
        self.assertIn("column", message)

    def test_duplicate_key(self) -> None:
        """A key given twice is invalid TOML."""
        path = self.write("[log]\nlevel = 'info'\nlevel = 'debug'\n")
        error = self.assertRaises(ConfigError, load_config, path)
        self.assertIn("invalid TOML", str(error))
        self.assertIn("line 3", str(error))

    def test_not_utf8(self) -> None:
        """A file that is not UTF-8 is invalid TOML."""
        path = self.write(b'[sip]\nuser_agent = "\xff"\n')
        error = self.assertRaises(ConfigError, load_config, path)
        self.assertEqual(
            str(error), f"{path}: invalid TOML: not UTF-8 text (byte 0xff at line 2, column 15)"
        )

    def test_bad_value_names_file(self) -> None:
        """A bad value in a file: the message starts with the file's name."""
        path = self.write("[sip]\nlisten = ['udp:1.2.3.4:70000']\n")
        error = self.assertRaises(ConfigError, load_config, str(path))
        self.assertEqual(
            str(error),
            f"{path}: sip.listen[0]: port 70000 in 'udp:1.2.3.4:70000' must be 0 to 65535",
        )

    def test_relative_paths(self) -> None:
        """
        Relative paths in a file are relative to the file's directory, even
        when the file is named with a relative path; absolute paths stay.
        """
        path = self.write(
            "[tls]\ncertificate = 'tls/cert.pem'\nprivate_key = '/etc/key.pem'\n"
            "ca_certificates = '../ca.pem'\n[state]\npath = 'var'\n"
        )
        relative = os.path.relpath(path)
        self.assertFalse(os.path.isabs(relative))
        config = load_config(relative)
        base = Path(os.path.abspath(path)).parent
        self.assertEqual(config.tls.certificate, base / "tls" / "cert.pem")
        self.assertEqual(config.tls.private_key, Path("/etc/key.pem"))
        self.assertEqual(config.tls.ca_certificates, base / ".." / "ca.pem")
        self.assertEqual(config.state.path, base / "var")
        self.assertTrue(config.state.path.is_absolute())

    def test_home_paths(self) -> None:
        """C{~} at the start of a path is the user's home directory."""
        self.patch(os, "environ", dict(os.environ, HOME="/home/someone"))
        path = self.write("[state]\npath = '~/state'\n")
        self.assertEqual(load_config(path).state.path, Path("/home/someone/state"))

    def test_paths_without_file(self) -> None:
        """L{parse_config} without C{base_dir} keeps relative paths relative."""
        config = parse_config({"state": {"path": "s"}, "tls": {"certificate": "c.pem"}})
        self.assertEqual(config.state.path, Path("s"))
        self.assertEqual(config.tls.certificate, Path("c.pem"))
        config = parse_config({"state": {"path": "s"}}, base_dir=Path("/srv"))
        self.assertEqual(config.state.path, Path("/srv/s"))

    def test_default_state_path_with_file(self) -> None:
        """The default state path stays relative to the current directory."""
        path = self.write("[log]\nlevel = 'debug'\n")
        self.assertEqual(load_config(path).state.path, Path("sipedge-state"))


class StructureTests(ConfigErrorAssertions, SynchronousTestCase):
    """Unknown sections and keys, and values that are not tables."""

    def test_unknown_section(self) -> None:
        """An unknown section suggests the closest known one."""
        self.assertConfigError({"sipp": {}}, "sipp", "unknown section", "did you mean 'sip'?")

    def test_unknown_section_without_suggestion(self) -> None:
        """An unknown section like no known one lists the known ones."""
        self.assertConfigError(
            {"zzzzz": {}}, "zzzzz", "unknown section", "expected one of:", "registrar"
        )

    def test_unknown_key(self) -> None:
        """An unknown key names its dotted path and suggests the closest known key."""
        self.assertConfigError(
            {"sip": {"lisen": []}}, "sip.lisen", "unknown key", "did you mean 'listen'?"
        )
        self.assertConfigError(
            {"timers": {"timer_b": 1}}, "timers.timer_b", "did you mean 'timer_c'?"
        )
        self.assertConfigError({"log": {"lvel": "info"}}, "log.lvel", "did you mean 'level'?")

    def test_unknown_route_key(self) -> None:
        """An unknown key in a route names the route's index."""
        self.assertConfigError(
            {"routes": [{"match_prefx": "1", "next_hop": "sip:a"}]},
            "routes[0].match_prefx",
            "did you mean 'match_prefix'?",
        )

    def test_section_not_table(self) -> None:
        """A section that is not a table."""
        self.assertConfigError({"sip": 5}, "sip", "expected a table", "integer 5")
        self.assertConfigError({"log": ["x"]}, "log", "expected a table", "got array")

    def test_dates_named(self) -> None:
        """A TOML date where a string is due is named as a date."""
        path = Path(self.mktemp())
        path.write_text("[log]\nlevel = 1979-05-27\n")
        error = self.assertRaises(ConfigError, load_config, path)
        self.assertEqual(
            str(error), f"{path}: log.level: expected a string, got date/time 1979-05-27"
        )

    def test_top_level_not_table(self) -> None:
        """A document that is not a table."""
        self.assertConfigError([], "(top level)", "expected a table")

    def test_routes_not_array(self) -> None:
        """C{routes} must be an array of tables."""
        self.assertConfigError({"routes": {}}, "routes", "expected an array of tables")
        self.assertConfigError({"routes": [5]}, "routes[0]", "expected a table", "integer 5")

    def test_source(self) -> None:
        """Without a source, messages start with C{<config>}."""
        error = self.assertRaises(ConfigError, parse_config, {"sipp": {}})
        self.assertTrue(str(error).startswith("<config>: sipp: "))


class SipTests(ConfigErrorAssertions, SynchronousTestCase):
    """C{[sip]}."""

    def sip(self, **table: Any) -> SipConfig:
        """Parse a C{[sip]} table."""
        return parse_config({"sip": table}).sip

    def test_domains(self) -> None:
        """Domains are lower-cased, without a trailing dot, IPs canonical and bare."""
        sip = self.sip(domains=["Example.COM.", "[2001:DB8::1]", "192.0.2.1", "example.com"])
        self.assertEqual(sip.domains, ("example.com", "2001:db8::1", "192.0.2.1"))
        self.assertTrue(sip.is_ours("EXAMPLE.com"))
        self.assertTrue(sip.is_ours("[2001:db8:0::1]"))
        self.assertFalse(sip.is_ours("other.com"))
        self.assertFalse(sip.is_ours("bad_host"))

    def test_no_domains(self) -> None:
        """An empty domain list is allowed: nothing is ours."""
        self.assertEqual(self.sip(domains=[]).domains, ())

    def test_bad_domain(self) -> None:
        """A domain that is not a host name or IP address."""
        self.assertConfigError(
            {"sip": {"domains": ["ok.example", "bad_domain"]}},
            "sip.domains[1]",
            "'bad_domain' is not a valid host name or IP address",
        )
        self.assertConfigError(
            {"sip": {"domains": [5]}}, "sip.domains[0]", "expected a string, got integer 5"
        )
        self.assertConfigError(
            {"sip": {"domains": "example.com"}}, "sip.domains", "expected an array"
        )

    def test_listen(self) -> None:
        """Listeners parse: transport case-insensitive, IPv6 in brackets, port 0."""
        sip = self.sip(listen=["UDP:[::1]:5060", "tls:10.0.0.1:0", "tcp:[2001:DB8::0:1]:5070"])
        self.assertEqual(
            sip.listen,
            (
                Listener("udp", "::1", 5060),
                Listener("tls", "10.0.0.1", 0),
                Listener("tcp", "2001:db8::1", 5070),
            ),
        )
        self.assertEqual(
            [str(listener) for listener in sip.listen],
            ["udp:[::1]:5060", "tls:10.0.0.1:0", "tcp:[2001:db8::1]:5070"],
        )

    def test_listen_errors(self) -> None:
        """Each bad listener is named by its index, with what is wrong."""
        cases = [
            ("sctp:1.2.3.4:5060", "bad transport 'sctp'"),
            ("udp:::1:5060", "IPv6 address in brackets"),
            ("udp:[::1:5060", "missing ']'"),
            ("udp:[1.2.3.4]:5060", "is not an IPv6 address"),
            ("udp:[::1]5060", "expected ':port' after ']'"),
            ("udp:1.2.3.4:99999", "port 99999", "must be 0 to 65535"),
            ("udp:1.2.3.4:-1", "bad port '-1'"),
            ("udp:1.2.3.4:http", "bad port 'http'"),
            ("udp:1.2.3.4", "missing port"),
            ("udp:example.com:5060", "bad host 'example.com'", "must be an IP address"),
            ("udp", "expected 'transport:host:port'"),
        ]
        for text, *fragments in cases:
            self.assertConfigError(
                {"sip": {"listen": ["udp:127.0.0.1:5060", text]}},
                "sip.listen[1]",
                *fragments,
            )

    def test_listen_wrong_types(self) -> None:
        """C{listen} must be an array of strings."""
        self.assertConfigError(
            {"sip": {"listen": "udp:1.2.3.4:5060"}}, "sip.listen", "expected an array, got string"
        )
        self.assertConfigError(
            {"sip": {"listen": [5060]}}, "sip.listen[0]", "expected a string", "integer 5060"
        )

    def test_listen_empty(self) -> None:
        """At least one listener."""
        self.assertConfigError({"sip": {"listen": []}}, "sip.listen", "at least one listener")

    def test_listen_duplicate(self) -> None:
        """Two listeners on one address clash; TCP and TLS share the TCP ports."""
        self.assertConfigError(
            {"sip": {"listen": ["udp:1.2.3.4:5060", "udp:1.2.3.4:5060"]}},
            "sip.listen[1]",
            "same UDP address as listen[0]",
        )
        self.assertConfigError(
            {"sip": {"listen": ["tcp:1.2.3.4:5060", "udp:1.2.3.4:5060", "tls:1.2.3.4:5060"]}},
            "sip.listen[2]",
            "same TCP address as listen[0]",
        )
        sip = self.sip(listen=["udp:1.2.3.4:0", "udp:1.2.3.4:0", "tcp:1.2.3.4:5060"])
        self.assertEqual(len(sip.listen), 3)

    def test_trusted(self) -> None:
        """Trusted networks are stored as networks; host bits are allowed."""
        sip = self.sip(trusted=["10.1.2.3/8", "192.0.2.1", "2001:db8::/32"])
        self.assertEqual(
            sip.trusted,
            (
                ipaddress.ip_network("10.0.0.0/8"),
                ipaddress.ip_network("192.0.2.1/32"),
                ipaddress.ip_network("2001:db8::/32"),
            ),
        )
        self.assertTrue(sip.is_trusted("10.200.0.1"))
        self.assertTrue(sip.is_trusted("2001:db8::5"))
        self.assertFalse(sip.is_trusted("192.0.2.2"))

    def test_bad_trusted(self) -> None:
        """A trusted entry that is not a network."""
        self.assertConfigError(
            {"sip": {"trusted": ["10.0.0.0/33"]}},
            "sip.trusted[0]",
            "'10.0.0.0/33' is not an IP network",
        )
        self.assertConfigError(
            {"sip": {"trusted": ["10.0.0.0/8", "lan"]}}, "sip.trusted[1]", "'lan'"
        )
        self.assertConfigError(
            {"sip": {"trusted": [10]}}, "sip.trusted[0]", "expected a network", "integer 10"
        )

    def test_record_route(self) -> None:
        """C{record_route} is a boolean."""
        self.assertIs(self.sip(record_route=False).record_route, False)
        self.assertConfigError(
            {"sip": {"record_route": "yes"}},
            "sip.record_route",
            "expected true or false, got string 'yes'",
        )
        self.assertConfigError({"sip": {"record_route": 1}}, "sip.record_route", "got integer 1")

    def test_advertise(self) -> None:
        """C{advertise} is a host, with an optional port."""
        self.assertEqual(
            self.sip(advertise="SIP.Example.com").advertise, HostPort("sip.example.com")
        )
        self.assertEqual(
            self.sip(advertise="203.0.113.5:5070").advertise, HostPort("203.0.113.5", 5070)
        )
        advertise = self.sip(advertise="[2001:db8::5]:5061").advertise
        self.assertEqual(advertise, HostPort("2001:db8::5", 5061))
        self.assertEqual(str(advertise), "[2001:db8::5]:5061")
        self.assertEqual(str(self.sip(advertise="[2001:db8::5]").advertise), "[2001:db8::5]")
        self.assertEqual(str(self.sip(advertise="a.example").advertise), "a.example")

    def test_bad_advertise(self) -> None:
        """Bad C{advertise} values."""
        for value, fragment in [
            ("2001:db8::5", "in brackets"),
            ("host:0", "must be 1 to 65535"),
            ("host:x", "bad port 'x'"),
            ("bad host", "not a valid host name"),
            ("", "not a valid host name"),
        ]:
            self.assertConfigError({"sip": {"advertise": value}}, "sip.advertise", fragment)
        self.assertConfigError(
            {"sip": {"advertise": 5060}}, "sip.advertise", "expected a string", "integer 5060"
        )

    def test_user_agent(self) -> None:
        """C{user_agent} is printable text; empty sends none."""
        self.assertEqual(self.sip(user_agent="Edge/1.0 (lab)").user_agent, "Edge/1.0 (lab)")
        self.assertEqual(self.sip(user_agent="").user_agent, "")
        for value in ["a\r\nX-Injected: 1", " padded", "tab\there"]:
            self.assertConfigError(
                {"sip": {"user_agent": value}}, "sip.user_agent", "control characters"
            )
        self.assertConfigError(
            {"sip": {"user_agent": 1}}, "sip.user_agent", "expected a string, got integer 1"
        )

    def test_max_forwards(self) -> None:
        """C{max_forwards} is an integer from 1 to 255."""
        self.assertEqual(self.sip(max_forwards=255).max_forwards, 255)
        self.assertConfigError(
            {"sip": {"max_forwards": 0}}, "sip.max_forwards", "must be 1 to 255, not 0"
        )
        self.assertConfigError(
            {"sip": {"max_forwards": 256}}, "sip.max_forwards", "must be 1 to 255, not 256"
        )
        self.assertConfigError(
            {"sip": {"max_forwards": 70.0}},
            "sip.max_forwards",
            "expected an integer, got float 70.0",
        )
        self.assertConfigError(
            {"sip": {"max_forwards": True}}, "sip.max_forwards", "got boolean true"
        )


class TlsTests(ConfigErrorAssertions, SynchronousTestCase):
    """C{[tls]}."""

    def test_values(self) -> None:
        """Every key set."""
        tls = parse_config(
            {
                "tls": {
                    "certificate": "c.pem",
                    "private_key": "k.pem",
                    "ca_certificates": "ca.pem",
                    "verify_client": "required",
                    "verify_server": False,
                }
            }
        ).tls
        self.assertEqual(
            tls,
            TlsConfig(Path("c.pem"), Path("k.pem"), Path("ca.pem"), "required", False),
        )

    def test_key_defaults_to_certificate(self) -> None:
        """Without C{private_key}, the key is read from the certificate file."""
        tls = parse_config({"tls": {"certificate": "both.pem"}}).tls
        self.assertEqual(tls.private_key, Path("both.pem"))
        self.assertEqual(TlsConfig(certificate=Path("x.pem")).private_key, Path("x.pem"))

    def test_key_without_certificate(self) -> None:
        """A private key without a certificate is an error."""
        self.assertConfigError(
            {"tls": {"private_key": "k.pem"}}, "tls.private_key", "without a certificate"
        )

    def test_verify_client(self) -> None:
        """C{verify_client} is none, optional or required."""
        for value in ("none", "optional", "required"):
            self.assertEqual(
                parse_config({"tls": {"verify_client": value}}).tls.verify_client, value
            )
        self.assertConfigError(
            {"tls": {"verify_client": "maybe"}},
            "tls.verify_client",
            "'none', 'optional', 'required'",
            "not 'maybe'",
        )
        self.assertConfigError(
            {"tls": {"verify_client": True}}, "tls.verify_client", "expected a string"
        )

    def test_verify_server(self) -> None:
        """C{verify_server} is a boolean."""
        self.assertConfigError(
            {"tls": {"verify_server": "no"}}, "tls.verify_server", "expected true or false"
        )

    def test_bad_paths(self) -> None:
        """Paths are non-empty strings."""
        for key in ("certificate", "private_key", "ca_certificates"):
            table: dict[str, Any] = {key: ""}
            if key == "private_key":
                table["certificate"] = "c.pem"
            self.assertConfigError({"tls": table}, f"tls.{key}", "must not be empty")
            table[key] = 5
            self.assertConfigError({"tls": table}, f"tls.{key}", "expected a path", "integer 5")


class StateTests(ConfigErrorAssertions, SynchronousTestCase):
    """C{[state]}."""

    def test_bad_path(self) -> None:
        """C{state.path} is a non-empty string."""
        self.assertConfigError({"state": {"path": ""}}, "state.path", "must not be empty")
        self.assertConfigError({"state": {"path": ["x"]}}, "state.path", "expected a path")

    def test_construct(self) -> None:
        """A L{StateConfig} takes a string or a path."""
        self.assertEqual(StateConfig("x").path, Path("x"))
        self.assertEqual(StateConfig(Path("x")).path, Path("x"))


class LimitsTests(ConfigErrorAssertions, SynchronousTestCase):
    """C{[limits]}."""

    _INTEGERS = (
        "max_message_size",
        "max_body_size",
        "max_header_fields",
        "max_line_length",
        "max_uri_length",
        "max_vias",
        "max_connections_per_source",
        "max_connections",
    )

    def test_values(self) -> None:
        """Every key maps onto L{LimitsConfig}, and the first six onto L{Limits}."""
        table = {name: index + 10 for index, name in enumerate(self._INTEGERS)}
        table["idle_timeout"] = 30
        limits = parse_config({"limits": table}).limits
        self.assertEqual(limits, LimitsConfig(**table))
        self.assertEqual(limits.idle_timeout, 30.0)
        self.assertIsInstance(limits.idle_timeout, float)
        self.assertEqual(
            limits.message_limits,
            Limits(
                max_message_size=10,
                max_body_size=11,
                max_header_fields=12,
                max_line_length=13,
                max_uri_length=14,
                max_vias=15,
            ),
        )

    def test_bad_integers(self) -> None:
        """Each integer limit must be a positive integer."""
        for name in self._INTEGERS:
            self.assertConfigError(
                {"limits": {name: 0}}, f"limits.{name}", "must be at least 1, not 0"
            )
            self.assertConfigError(
                {"limits": {name: "10"}}, f"limits.{name}", "expected an integer, got string '10'"
            )

    def test_bad_idle_timeout(self) -> None:
        """C{idle_timeout} is a positive, finite number of seconds."""
        for value in (0, -1.5, float("inf"), float("nan")):
            self.assertConfigError(
                {"limits": {"idle_timeout": value}}, "limits.idle_timeout", "positive number"
            )
        self.assertConfigError(
            {"limits": {"idle_timeout": "5m"}},
            "limits.idle_timeout",
            "expected a number of seconds",
        )

    def test_per_source_not_over_total(self) -> None:
        """Per-source connections cannot exceed all connections."""
        self.assertConfigError(
            {"limits": {"max_connections": 10}},
            "limits.max_connections_per_source",
            "must not exceed max_connections (10), not 100",
        )


class TimersTests(ConfigErrorAssertions, SynchronousTestCase):
    """C{[timers]}."""

    def test_values(self) -> None:
        """Timers take integers or floats, stored as floats."""
        timers = parse_config(
            {"timers": {"t1": 1, "t2": 8, "t4": 2.5, "timer_c": 200, "response_chain_timeout": 2}}
        ).timers
        self.assertEqual(timers, TimersConfig(1.0, 8.0, 2.5, 200.0, 2.0))
        self.assertIsInstance(timers.t1, float)

    def test_bad_values(self) -> None:
        """Each timer must be a positive number."""
        for name in ("t1", "t2", "t4", "timer_c", "response_chain_timeout"):
            self.assertConfigError(
                {"timers": {name: 0}}, f"timers.{name}", "positive number of seconds"
            )
            self.assertConfigError(
                {"timers": {name: False}}, f"timers.{name}", "expected a number of seconds"
            )

    def test_t1_less_than_t2(self) -> None:
        """T1 must be less than T2."""
        self.assertConfigError(
            {"timers": {"t1": 5}}, "timers.t1", "must be less than t2 (4.0), not 5.0"
        )
        self.assertConfigError(
            {"timers": {"t1": 2, "t2": 2}}, "timers.t1", "must be less than t2 (2.0)"
        )


class RegistrarTests(ConfigErrorAssertions, SynchronousTestCase):
    """C{[registrar]}."""

    def test_values(self) -> None:
        """The three intervals."""
        registrar = parse_config(
            {"registrar": {"min_expires": 30, "max_expires": 7200, "default_expires": 600}}
        ).registrar
        self.assertEqual(registrar, RegistrarConfig(30, 7200, 600))

    def test_bad_values(self) -> None:
        """Each interval is an integer from 1 to 2**32-1."""
        for name in ("min_expires", "max_expires", "default_expires"):
            self.assertConfigError(
                {"registrar": {name: 0}}, f"registrar.{name}", "must be 1 to 4294967295, not 0"
            )
            self.assertConfigError(
                {"registrar": {name: 60.0}}, f"registrar.{name}", "expected an integer"
            )

    def test_order(self) -> None:
        """C{min_expires <= default_expires <= max_expires}."""
        self.assertConfigError(
            {"registrar": {"min_expires": 4000}},
            "registrar.default_expires",
            "must be at least min_expires (4000), not 3600",
        )
        self.assertConfigError(
            {"registrar": {"default_expires": 4000}},
            "registrar.default_expires",
            "must not exceed max_expires (3600), not 4000",
        )


class DialogsTests(ConfigErrorAssertions, SynchronousTestCase):
    """C{[dialogs]}."""

    def test_defaults(self) -> None:
        """
        Dialogs are tracked, session timers enforced, 12 hours, 100,000 at
        most; our Record-Route counts for a day.
        """
        self.assertEqual(
            DEFAULT_CONFIG.dialogs, DialogsConfig(True, True, 43200.0, 100_000, 86400.0)
        )

    def test_values(self) -> None:
        """Every key."""
        dialogs = parse_config(
            {
                "dialogs": {
                    "track": False,
                    "session_timers": False,
                    "max_lifetime": 0,
                    "max_dialogs": 10,
                    "route_lifetime": 0,
                }
            }
        ).dialogs
        self.assertEqual(dialogs, DialogsConfig(False, False, 0.0, 10, 0.0))

    def test_bad_values(self) -> None:
        """Booleans, a non-negative number of seconds, a positive count."""
        self.assertConfigError({"dialogs": {"track": "yes"}}, "dialogs.track", "expected true")
        self.assertConfigError(
            {"dialogs": {"max_lifetime": -1}}, "dialogs.max_lifetime", "non-negative"
        )
        self.assertConfigError(
            {"dialogs": {"max_dialogs": 0}}, "dialogs.max_dialogs", "must be at least 1"
        )
        self.assertConfigError(
            {"dialogs": {"route_lifetime": -5}}, "dialogs.route_lifetime", "non-negative"
        )


class RouteTests(ConfigErrorAssertions, SynchronousTestCase):
    """C{[[routes]]}."""

    def test_routes(self) -> None:
        """Routes keep their order; the next hop is a parsed SIP URI."""
        routes = parse_config(
            {
                "routes": [
                    {"match_prefix": "+44", "next_hop": "sip:10.0.0.5:5060;transport=tcp"},
                    {"match_domain": "PBX.example.com", "next_hop": "sips:[2001:db8::5]"},
                    {"match_prefix": "+", "next_hop": "sip:trunk.example.net"},
                ]
            }
        ).routes
        self.assertEqual(len(routes), 3)
        first, second, third = routes
        self.assertEqual(first.match_prefix, "+44")
        self.assertIsNone(first.match_domain)
        self.assertEqual(str(first.next_hop), "sip:10.0.0.5:5060;transport=tcp")
        self.assertEqual(first.next_hop.transport, "tcp")
        self.assertEqual(first.next_hop.port, 5060)
        self.assertEqual(second.match_domain, "pbx.example.com")
        self.assertEqual(second.next_hop.scheme, "sips")
        self.assertEqual(third.match_prefix, "+")
        hash(routes)

    def test_matches(self) -> None:
        """L{Route.matches} compares hosts normalized and user parts by prefix."""
        by_prefix = Route("sip:gw", match_prefix="+44")
        self.assertTrue(by_prefix.matches("any.example", "+441234"))
        self.assertFalse(by_prefix.matches("any.example", "441234"))
        self.assertFalse(by_prefix.matches("any.example", None))
        by_domain = Route("sip:gw", match_domain="[2001:db8::1]")
        self.assertTrue(by_domain.matches("[2001:DB8:0::1]", None))
        self.assertTrue(by_domain.matches("2001:db8::1", "alice"))
        self.assertFalse(by_domain.matches("example.com", None))
        self.assertFalse(by_domain.matches("not a host", None))

    def test_exactly_one_match(self) -> None:
        """A route has exactly one of C{match_domain} and C{match_prefix}."""
        self.assertConfigError(
            {"routes": [{"next_hop": "sip:a"}]}, "routes[0]", "exactly one of match_domain"
        )
        self.assertConfigError(
            {"routes": [{"match_domain": "a", "match_prefix": "1", "next_hop": "sip:a"}]},
            "routes[0]",
            "exactly one of match_domain and match_prefix",
        )

    def test_missing_next_hop(self) -> None:
        """A route without a next hop."""
        self.assertConfigError(
            {"routes": [{"match_prefix": "1", "next_hop": "sip:a"}, {"match_domain": "a"}]},
            "routes[1].next_hop",
            "missing",
        )

    def test_bad_next_hop(self) -> None:
        """The next hop must be a SIP or SIPS URI without headers."""
        for value, fragment in [
            ("http://example.com", "'http' scheme"),
            ("sip:a b", "whitespace"),
            ("10.0.0.5:5060", "not a valid SIP URI"),
            ("sip:gw?Subject=x", "cannot carry URI headers"),
        ]:
            self.assertConfigError(
                {"routes": [{"match_prefix": "1", "next_hop": value}]},
                "routes[0].next_hop",
                fragment,
            )
        self.assertConfigError(
            {"routes": [{"match_prefix": "1", "next_hop": 5}]},
            "routes[0].next_hop",
            "expected a SIP URI",
        )

    def test_bad_match(self) -> None:
        """Bad prefixes and domains."""
        for value in ("12a", "", "1+", "++1", " 1"):
            self.assertConfigError(
                {"routes": [{"match_prefix": value, "next_hop": "sip:a"}]},
                "routes[0].match_prefix",
                "digits with an optional leading '+'",
            )
        self.assertConfigError(
            {"routes": [{"match_prefix": 44, "next_hop": "sip:a"}]},
            "routes[0].match_prefix",
            "expected a string of digits, got integer 44",
        )
        self.assertConfigError(
            {"routes": [{"match_domain": "a b", "next_hop": "sip:a"}]},
            "routes[0].match_domain",
            "not a valid host name",
        )


class PipelineTests(ConfigErrorAssertions, SynchronousTestCase):
    """C{[pipeline]}."""

    def test_stages(self) -> None:
        """Stages are kept in order; names are not checked against plugins here."""
        pipeline = parse_config(
            {"pipeline": {"stages": ["sanity", "my-plugin", "forward"]}}
        ).pipeline
        self.assertEqual(pipeline.stages, ("sanity", "my-plugin", "forward"))

    def test_options(self) -> None:
        """Stage options are free-form tables, read-only, handed out as copies."""
        data: dict[str, Any] = {
            "pipeline": {"options": {"sanity": {"supported": ["path"], "nested": {"a": 1}}}}
        }
        config = parse_config(data)
        data["pipeline"]["options"]["sanity"]["supported"].append("changed")
        options = config.pipeline.options_for("sanity")
        self.assertEqual(options, {"supported": ["path"], "nested": {"a": 1}})
        options["supported"].append("mine")
        self.assertEqual(config.pipeline.options_for("sanity")["supported"], ["path"])
        self.assertEqual(config.pipeline.options_for("forward"), {})
        self.assertRaises(TypeError, operator.setitem, config.pipeline.options, "x", {})
        hash(config)

    def test_options_equality(self) -> None:
        """Configurations with different options differ."""
        one = PipelineConfig(options={"sanity": {"supported": ["a"]}})
        self.assertEqual(one, PipelineConfig(options={"sanity": {"supported": ["a"]}}))
        self.assertNotEqual(one, PipelineConfig(options={"sanity": {"supported": ["b"]}}))

    def test_bad_stages(self) -> None:
        """Stage lists: an array of distinct, non-empty names."""
        self.assertConfigError(
            {"pipeline": {"stages": []}}, "pipeline.stages", "at least one stage"
        )
        self.assertConfigError(
            {"pipeline": {"stages": ["a", "b", "a"]}},
            "pipeline.stages[2]",
            "'a' is already stages[0]",
        )
        self.assertConfigError(
            {"pipeline": {"stages": ["a", ""]}}, "pipeline.stages[1]", "must not be empty"
        )
        self.assertConfigError(
            {"pipeline": {"stages": [1]}}, "pipeline.stages[0]", "expected a stage name"
        )
        self.assertConfigError(
            {"pipeline": {"stages": "sanity"}}, "pipeline.stages", "expected an array"
        )

    def test_bad_options(self) -> None:
        """Options are tables, for stages in the chain."""
        self.assertConfigError(
            {"pipeline": {"options": {"registar": {}}}},
            "pipeline.options.registar",
            "not in pipeline.stages",
            "did you mean 'registrar'?",
        )
        self.assertConfigError(
            {"pipeline": {"options": {"registrar": 5}}},
            "pipeline.options.registrar",
            "expected a table, got integer 5",
        )
        self.assertConfigError(
            {"pipeline": {"options": [1]}}, "pipeline.options", "expected a table"
        )


class LogTests(ConfigErrorAssertions, SynchronousTestCase):
    """C{[log]}."""

    def test_values(self) -> None:
        """Levels map onto Twisted's; formats are text or json."""
        for name in ("debug", "info", "warn", "error", "critical"):
            log = parse_config({"log": {"level": name, "format": "json"}}).log
            self.assertEqual(log.log_level, LogLevel.levelWithName(name))
            self.assertEqual(log.format, "json")

    def test_bad_values(self) -> None:
        """Unknown levels and formats."""
        self.assertConfigError(
            {"log": {"level": "verbose"}}, "log.level", "'debug', 'info'", "not 'verbose'"
        )
        self.assertConfigError({"log": {"format": "xml"}}, "log.format", "'text', 'json'")
        self.assertConfigError({"log": {"level": 3}}, "log.level", "expected a string")


class TopologyHidingTests(ConfigErrorAssertions, SynchronousTestCase):
    """C{[topology_hiding]}."""

    def test_defaults(self) -> None:
        """Off; internal is RFC 1918, loopback, link-local and ULA; the Record-Route key."""
        section = DEFAULT_CONFIG.topology_hiding
        self.assertFalse(section.enabled)
        self.assertIsNone(section.key_file)
        self.assertIn(ipaddress.ip_network("10.0.0.0/8"), section.internal)
        self.assertIn(ipaddress.ip_network("fc00::/7"), section.internal)
        self.assertEqual(section.internal, DEFAULT_CONFIG.media.internal)

    def test_values(self) -> None:
        """Networks are parsed; the key file is relative to the configuration file."""
        directory = Path(self.mktemp())
        directory.mkdir()
        path = directory / "sipedge.toml"
        path.write_text(
            "[topology_hiding]\nenabled = true\ninternal = ['10.1.0.0/16', 'fd00::/8']\n"
            "key_file = 'th.key'\n"
        )
        section = load_config(path).topology_hiding
        self.assertTrue(section.enabled)
        self.assertEqual(
            section.internal,
            (ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("fd00::/8")),
        )
        self.assertEqual(section.key_file, Path(os.path.abspath(directory)) / "th.key")

    def test_bad_values(self) -> None:
        """Errors name the key."""
        self.assertConfigError(
            {"topology_hiding": {"enabled": "yes"}}, "topology_hiding.enabled", "true or false"
        )
        self.assertConfigError(
            {"topology_hiding": {"internal": ["10.0.0.0/8", "lan"]}},
            "topology_hiding.internal[1]",
            "'lan'",
        )
        self.assertConfigError(
            {"topology_hiding": {"internal": []}},
            "topology_hiding.internal",
            "at least one network",
        )
        self.assertConfigError(
            {"topology_hiding": {"key_file": ""}}, "topology_hiding.key_file", "empty"
        )
        self.assertConfigError(
            {"topology_hiding": {"secret": "x"}}, "topology_hiding.secret", "unknown key"
        )

    def test_needs_record_route(self) -> None:
        """Hiding without Record-Route cannot route in-dialog requests back: refused."""
        self.assertConfigError(
            {"topology_hiding": {"enabled": True}, "sip": {"record_route": False}},
            "topology_hiding.enabled",
            "sip.record_route = true",
        )


class ValueTests(SynchronousTestCase):
    """The values check themselves when constructed directly."""

    def test_listener(self) -> None:
        """L{Listener} checks its transport, host and port."""
        self.assertEqual(Listener.parse("tls:[::]:5061"), Listener("tls", "::", 5061))
        self.assertTrue(Listener("tls", "::", 5061).is_stream)
        self.assertFalse(Listener("udp", "::", 5061).is_stream)
        self.assertRaises(ValueError, Listener, "sctp", "1.2.3.4", 5060)
        self.assertRaises(ValueError, Listener, "udp", "host", 5060)
        self.assertRaises(ValueError, Listener, "udp", "1.2.3.4", 65536)
        self.assertRaises(ValueError, Listener, "udp", "1.2.3.4", True)

    def test_sections(self) -> None:
        """Sections raise L{ConfigError} naming the attribute."""
        error = self.assertRaises(ConfigError, TimersConfig, t1=-1)
        self.assertIn("t1", str(error))
        error = self.assertRaises(ConfigError, SipConfig, listen=["bad"])
        self.assertIn("listen[0]", str(error))
        self.assertRaises(ConfigError, Config, routes=[5])
        self.assertRaises(TypeError, Config, sip={})

    def test_evolve(self) -> None:
        """Overrides (as command-line flags make) go through C{attrs.evolve} and are checked."""
        sip = attrs.evolve(DEFAULT_CONFIG.sip, listen=["udp:127.0.0.1:0"])
        self.assertEqual(sip.listen, (Listener("udp", "127.0.0.1", 0),))
        self.assertRaises(ConfigError, attrs.evolve, DEFAULT_CONFIG.sip, max_forwards=0)


class ProcessTests(ConfigErrorAssertions, SynchronousTestCase):
    """C{[process]}: the number of worker processes."""

    def test_default_auto(self) -> None:
        """By default sipedge runs one worker per core: one process on one core."""
        self.assertEqual(DEFAULT_CONFIG.process.workers, "auto")
        self.assertEqual(DEFAULT_CONFIG.process.worker_count(cores=16), 16)
        self.assertEqual(DEFAULT_CONFIG.process.worker_count(cores=1), 1)

    def test_number(self) -> None:
        """An integer is that many workers, whatever the cores."""
        config = parse_config({"process": {"workers": 3}})
        self.assertEqual(config.process.worker_count(cores=1), 3)

    def test_auto(self) -> None:
        """C{"auto"} is one worker per core (the cores this process may use by default)."""
        config = parse_config({"process": {"workers": "auto"}})
        self.assertEqual(config.process.worker_count(cores=4), 4)
        self.assertEqual(config.process.worker_count(cores=0), 1)
        self.assertGreaterEqual(config.process.worker_count(), 1)

    def test_bad(self) -> None:
        """Anything else is refused, naming the key and what it takes."""
        for bad in (0, -1, 1025, "many", True, 2.0):
            self.assertConfigError(
                {"process": {"workers": bad}}, "process.workers", '"auto" or an integer'
            )

    def test_unknown_key(self) -> None:
        """An unknown key in C{[process]} is refused."""
        self.assertConfigError({"process": {"worker": 2}}, "process.worker", "unknown key")
