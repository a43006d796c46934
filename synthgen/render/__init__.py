"""Everything that imports bpy lives here (Blender scene building, probing, rendering)."""
