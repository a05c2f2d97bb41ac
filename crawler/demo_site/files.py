"""A generated site on disk: one folder per host plus `site.json`, the manifest to rebuild it.

    DIR/site.json          spec, address, ports, seeds
    DIR/h0/index.html      host 0's "/"
    DIR/h0/sec1/page3.html ...
    DIR/h0/files/big-0.bin large files, written chunk by chunk

Redirects and faults are not files: `load_site` regenerates the model from the manifest
(generation is deterministic) and hands them to each `DirectoryHost` as specials.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from crawler.demo_site.hosts import DirectoryHost, file_name_for
from crawler.demo_site.resources import Body, Flaky, GeneratedBody, Redirect
from crawler.demo_site.site import Site, SiteError, SiteSpec, build_site

MANIFEST = "site.json"
_FORMAT = 1


def host_folder(root: Path, index: int) -> Path:
    return root / f"h{index}"


def write_site(site: Site, root: str | Path) -> Path:
    """Write every file of `site` under `root` (created if needed) and its manifest; returns the
    manifest path. Existing files of the same names are replaced."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for host in site.hosts:
        folder = host_folder(root, host.index)
        for path, resource in host.routes.items():
            if not isinstance(resource, Body | GeneratedBody):
                continue
            target = folder / file_name_for(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as file:
                for chunk in resource.chunks(0, resource.size):
                    file.write(chunk)
    manifest = {
        "format": _FORMAT,
        "spec": dataclasses.asdict(site.spec),
        "address": site.hosts[0].address,
        "ports": [host.port for host in site.hosts],
        "seeds": site.seeds,
    }
    path = root / MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path


def read_manifest(root: str | Path) -> tuple[SiteSpec, str, list[int]]:
    """The spec, address and ports a site folder was generated with."""
    path = Path(root) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SiteError(f"{path} not found: not a generated site folder") from None
    except (OSError, ValueError) as error:
        raise SiteError(f"cannot read {path}: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise SiteError(f"{path} is not a site manifest of format {_FORMAT}")
    try:
        spec_fields = dict(manifest["spec"])
        spec_fields["big_files"] = tuple(spec_fields.get("big_files", ()))
        spec = SiteSpec(**spec_fields)
        return spec, str(manifest["address"]), [int(port) for port in manifest["ports"]]
    except (KeyError, TypeError, ValueError) as error:
        raise SiteError(f"{path} is damaged: {error}") from None


def load_site(root: str | Path) -> tuple[Site, list[DirectoryHost]]:
    """The site model of a folder written by `write_site`, and hosts serving its files."""
    root = Path(root)
    spec, address, ports = read_manifest(root)
    site = build_site(spec, ports, address)
    hosts = []
    for host in site.hosts:
        specials = {
            path: resource
            for path, resource in host.routes.items()
            if isinstance(resource, Redirect | Flaky)
        }
        hosts.append(DirectoryHost(host_folder(root, host.index), specials))
    return site, hosts
