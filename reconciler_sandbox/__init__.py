"""Stateful fakes of the GitLab and Zendesk APIs this tool uses, served over HTTP on loopback."""
