"""Pure parts of ``kubectl netgen capture``: what to capture and how, and what comes back.

No cluster, clock or console here: values in, values out, so each part is unit-tested on its own.

* :mod:`.targets`: ``deploy/web``, ``sts/db``, ``pod/x``… -> a kind and a name; a workload object -> the
  label selector of its pods;
* :mod:`.plan`: durations, the BPF filters, the ephemeral container (command, security context,
  resources) and the capability profiles;
* :mod:`.stream`: the framed base64 log stream the container writes -> pcap parts and socket tables,
  verified; merging the parts into one pod capture.
"""
