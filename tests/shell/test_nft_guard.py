"""The safety net: the nft adapter refuses to touch this machine's own network namespace."""

from __future__ import annotations

import pytest

from oxwrtd.core.fw_script import absent
from oxwrtd.shell.nft import Nft, NftApplyError, in_init_netns


@pytest.mark.skipif(not in_init_netns(), reason="runs only in the machine's own namespace")
def test_apply_in_the_machines_own_namespace_is_refused() -> None:
    nft = Nft()
    try:
        # even if the guard broke, deleting a table that does not exist changes nothing
        with pytest.raises(NftApplyError, match="own network namespace"):
            nft.apply(absent("inet oxwrt-guard-probe"), force=True)
    finally:
        nft.close()
