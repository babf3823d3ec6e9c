// The named recipes, by the name a target spec gives them (torch@1.1.0 -> torch).
import { onnx } from './onnx.js';
import { onnxruntime } from './onnxruntime.js';
import { torch } from './torch.js';
import { torchvision } from './torchvision.js';
import type { Recipe } from './types.js';

export const recipes: Record<string, Recipe> = { torch, torchvision, onnx, onnxruntime };

export function recipeNames(): string[] {
  return Object.keys(recipes);
}
