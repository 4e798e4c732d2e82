"""Nightscout compatibility: its records (documents, queries, store), its site views
(status, properties) and its API routes, as mixins of the ingress deployment."""
