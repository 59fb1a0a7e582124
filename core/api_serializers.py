"""Request bodies take each field in the JSON type the schema states.

DRF reads leniently: ``"enabled": 0`` as false, ``"name": 5`` as "5", ``"provider": "7"`` as 7,
``"components": {}`` as an empty list. A client that sends the wrong type has a bug the answer
should name, and the schema promises what the server takes; ``JsonTypes`` refuses it with 400
naming the field.
"""

from rest_framework import serializers

_EXPECTED = (
    # (field classes, the JSON types they take, what the message calls them); the first match.
    (
        (
            serializers.ListField,
            serializers.ManyRelatedField,
            serializers.ListSerializer,
            serializers.MultipleChoiceField,
        ),
        (list,),
        "a list",
    ),
    (serializers.BooleanField, (bool,), "true or false"),
    ((serializers.IntegerField, serializers.PrimaryKeyRelatedField), (int,), "an integer"),
    ((serializers.FloatField,), (int, float), "a number"),
    (
        (
            serializers.CharField,
            serializers.ChoiceField,
            serializers.SlugRelatedField,
            serializers.DateTimeField,
            serializers.DateField,
            serializers.UUIDField,
        ),
        (str,),
        "a string",
    ),
    ((serializers.DictField, serializers.Serializer), (dict,), "an object"),
)


def _expected(field) -> tuple[tuple[type, ...], str] | None:
    for classes, types, name in _EXPECTED:
        if isinstance(field, classes):
            return types, name
    return None  # JSONField and the like: any JSON


class JsonTypes:
    """Serializer mixin: a writable field given a value of another JSON type is a field error
    ("Give a string."), before DRF would convert it."""

    def to_internal_value(self, data):
        if type(data) is dict:  # parsed JSON (a query string's QueryDict holds only strings)
            errors = {}
            for field in self._writable_fields:
                value = data.get(field.field_name)
                expected = _expected(field)
                if value is None or expected is None:
                    continue
                types, name = expected
                if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                    errors[field.field_name] = [f"Give {name}."]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)
