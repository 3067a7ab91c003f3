"""reconcile: declarative rotation of GitLab and Zendesk credentials into every place they are used."""

__version__ = "0.1.0"
