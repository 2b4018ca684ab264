"""The private database's access path: the idle access task started on demand, an SSM
port-forwarding session into it (`ssm_session`, the real seam) and a local SOCKS5 front for the
postgresql provider (`socks5`), all opened and always closed by `tunnel`."""
