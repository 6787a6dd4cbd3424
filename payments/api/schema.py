"""OpenAPI helpers for the console API (drf-spectacular).

``EnumField`` gives each choice set its own named component (``AccountKindEnum``,
``PaymentMethodStatusEnum``...). Without it drf-spectacular names enums after the *field*, so the
``kind`` of an account and the ``kind`` of a payment method collide and the schema generates
with warnings. The extension below registers the named component and answers a ``$ref``.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent, build_choice_description_list
from rest_framework import serializers


class EnumField(serializers.ChoiceField):
    """A ChoiceField over a Django ``TextChoices`` class, documented as the component ``enum_name``."""

    def __init__(self, choices_class, *, enum_name: str, **kwargs):
        self.enum_name = enum_name
        super().__init__(choices=choices_class.choices, **kwargs)


class EnumFieldExtension(OpenApiSerializerFieldExtension):
    target_class = EnumField

    def map_serializer_field(self, auto_schema, direction):
        field: EnumField = self.target
        component = ResolvedComponent(
            name=field.enum_name,
            type=ResolvedComponent.SCHEMA,
            object=field.enum_name,
            schema={
                "type": "string",
                "enum": list(field.choices),
                "description": build_choice_description_list(field.choices.items()),
            },
        )
        auto_schema.registry.register_on_missing(component)
        return component.ref
