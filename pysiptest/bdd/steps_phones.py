"""Steps about phones and registration."""
from __future__ import annotations

import inspect
from typing import Any, Optional

from behave import step, then

from pysiptest.bdd._common import WAIT, phone_network, phone_of
from pysiptest.device import find_device
from pysiptest.phone import Phone


def make_phone(context: Any, name: str, device: str, password: Optional[str] = None) -> Phone:
    """A phone for a person (user = the lower-cased name) with a device model, pointed at the SUT."""
    try:
        cls = find_device(device)
    except KeyError as exc:
        raise AssertionError(str(exc.args[0])) from None
    sut = context.sut
    kwargs: dict[str, Any] = {}
    if password is None:
        password = getattr(context, "users", {}).get(name.lower())
    if password is not None:
        if "password" not in inspect.signature(Phone).parameters:
            raise AssertionError("this pysiptest has no digest authentication yet (Phone takes no password)")
        kwargs["password"] = password
    phone = Phone(name.lower(), cls(), engine=context.engine, domain=sut.domain, display_name=name, name=name,
                  **phone_network(context), **kwargs)
    context.phones[name] = phone
    context.last_phone = name
    return phone


@step("{name:Name} uses {device:Device} phone")
def step_uses_phone(context: Any, name: str, device: str) -> None:
    """A phone of that model for the person (user name = the name in lower case), registered with the SUT.

    Example: ``Given Alice uses Squirrel350 phone``
    """
    make_phone(context, name, device).register(timeout=WAIT)


@step("{name:Name} uses {device:Device} phone without registering")
def step_uses_phone_unregistered(context: Any, name: str, device: str) -> None:
    """A phone of that model for the person that does not register.

    Example: ``Given Carol uses Chipmunk5000 phone without registering``
    """
    make_phone(context, name, device)


@step("{name:Name} uses {device:Device} phone with password {password:Word}")
def step_uses_phone_password(context: Any, name: str, device: str, password: str) -> None:
    """A phone with digest credentials (user = name in lower case), registered with the SUT.

    Example: ``Given Alice uses Squirrel350 phone with password secret``
    """
    make_phone(context, name, device, password).register(timeout=WAIT)


@step("{name:Name} registers")
def step_registers(context: Any, name: str) -> None:
    """REGISTER and expect success.

    Example: ``When Carol registers``
    """
    phone_of(context, name).register(timeout=WAIT)


@step("{name:Name} unregisters")
def step_unregisters(context: Any, name: str) -> None:
    """REGISTER with Expires: 0 and expect success.

    Example: ``When Bob unregisters``
    """
    phone_of(context, name).unregister(timeout=WAIT)


@step("{name:Name} fails to register with {code:d}")
def step_register_fails(context: Any, name: str, code: int) -> None:
    """REGISTER and expect it to be refused with that status.

    Example: ``Then Mallory fails to register with 403``
    """
    phone = phone_of(context, name)
    try:
        phone.register(timeout=WAIT)
    except AssertionError as exc:
        assert f": {code} " in f"{exc} ", f"{name}'s REGISTER failed, but not with {code}: {exc}"
        return
    raise AssertionError(f"{name} registered, expected a {code} refusal")


@then("{name:Name} is registered")
def step_is_registered(context: Any, name: str) -> None:
    """The person's phone holds a successful registration.

    Example: ``Then Alice is registered``
    """
    phone = phone_of(context, name)
    assert phone.registered, f"{name} is not registered"


@then("{name:Name} is not registered")
def step_is_not_registered(context: Any, name: str) -> None:
    """The person's phone holds no registration.

    Example: ``Then Bob is not registered``
    """
    phone = phone_of(context, name)
    assert not phone.registered, f"{name} is registered"


__all__ = ["make_phone"]
