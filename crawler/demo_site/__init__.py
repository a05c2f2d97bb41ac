"""A local demo and benchmark site: a deterministic linked site over several loopback ports,
and a fast server for it. See `site.py` for what a site contains and `runner.py` for ways to
serve one; `python -m crawler.demo_site --help` for the command line."""

from crawler.demo_site.files import load_site, read_manifest, write_site
from crawler.demo_site.hosts import DirectoryHost, HostContent, MemoryHost
from crawler.demo_site.nginx import NginxSite, nginx_config
from crawler.demo_site.resources import Body, FileBody, Flaky, GeneratedBody, Redirect, Resource
from crawler.demo_site.runner import DemoSiteProcess, ServedSite, site_in_thread, start_site
from crawler.demo_site.server import DemoServer, LoggedRequest, bind_sockets
from crawler.demo_site.site import HOSTILE_HREFS, HostSite, Site, SiteError, SiteSpec, build_site

__all__ = [
    "HOSTILE_HREFS",
    "Body",
    "DemoServer",
    "DemoSiteProcess",
    "DirectoryHost",
    "FileBody",
    "Flaky",
    "GeneratedBody",
    "HostContent",
    "HostSite",
    "LoggedRequest",
    "MemoryHost",
    "NginxSite",
    "Redirect",
    "Resource",
    "ServedSite",
    "Site",
    "SiteError",
    "SiteSpec",
    "bind_sockets",
    "build_site",
    "load_site",
    "nginx_config",
    "read_manifest",
    "site_in_thread",
    "start_site",
    "write_site",
]
