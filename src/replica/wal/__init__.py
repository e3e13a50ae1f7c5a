"""PostgreSQL's write-ahead log shipped to object storage: names and LSNs, sealing, the archive of each destination.

Flow: `actions → wal → storage`. Segments go through boto3 straight to `<prefix>/replica/wal/<job>/` beside each restic
repository (restic would cost ~0.5 s of key derivation per segment), compressed and encrypted here.
"""
