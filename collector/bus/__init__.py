"""The bus stage of the data flow (sources → bus → engine → store): a small interface (base.py), the
JetStream backend (jetstream.py, nats-py imported only there) and the registry that builds one from config."""
